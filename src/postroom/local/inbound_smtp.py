"""SES's receiving side, on loopback: an SMTP listener (aiosmtpd) that accepts mail for the inbound domains, stores
the MIME in the emulated inbound bucket exactly where SES's S3 action would (``inbound/<message id>``), and invokes the
*same* inbound handler with the event SES's Lambda action sends.

Differences from SES, on purpose: unknown recipients are refused at RCPT time (550 5.1.1) instead of being bounced
afterwards; the handler runs before the final 250, so a script can read the mailbox as soon as its SMTP client
returns (SES answers first and invokes asynchronously); no spam, virus, SPF, DKIM or DMARC checks are made (every
verdict is GRAY, SES's "could not tell").
"""

# aiosmtpd finds its hooks by their exact names (handle_RCPT, handle_DATA):
# ruff: noqa: N802

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from postroom.core.clock import isoformat

if TYPE_CHECKING:
    from pathlib import Path

    from postroom.local.handlers import LocalFunction

log = logging.getLogger("postroom.local")

DEFAULT_PORT = 2525
SES_MAX_MESSAGE_BYTES = 40 * 1024 * 1024  # SES receiving accepts up to 40 MB including headers
LOCAL_VERDICT = "GRAY"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def ses_message_id() -> str:
    """40 lower-case letters and digits, the shape of SES's receipt message ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(40))


def ses_lambda_event(
    *,
    message_id: str,
    received_at: datetime,
    mail_from: str,
    recipients: list[str],
    content: bytes,
    function_arn: str,
    verdict: str = LOCAL_VERDICT,
) -> dict[str, Any]:
    """The event SES's Lambda action delivers (docs: "Lambda action" event object), for one stored message."""
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(content)
    stamp = isoformat(received_at)

    def listed(name: str) -> list[str]:
        return [str(v) for v in headers.get_all(name, [])]

    return {
        "Records": [
            {
                "eventSource": "aws:ses",
                "eventVersion": "1.0",
                "ses": {
                    "mail": {
                        "timestamp": stamp,
                        "source": mail_from,
                        "messageId": message_id,
                        "destination": recipients,
                        "headersTruncated": False,
                        "headers": [{"name": n, "value": str(v)} for n, v in headers.items()][:100],
                        "commonHeaders": {
                            "returnPath": mail_from,
                            "from": listed("From"),
                            "to": listed("To"),
                            "date": str(headers.get("Date", "")),
                            "messageId": str(headers.get("Message-ID", "")),
                            "subject": str(headers.get("Subject", "")),
                        },
                    },
                    "receipt": {
                        "timestamp": stamp,
                        "processingTimeMillis": 0,
                        "recipients": recipients,
                        "spamVerdict": {"status": verdict},
                        "virusVerdict": {"status": verdict},
                        "spfVerdict": {"status": verdict},
                        "dkimVerdict": {"status": verdict},
                        "dmarcVerdict": {"status": verdict},
                        "action": {"type": "Lambda", "functionArn": function_arn, "invocationType": "Event"},
                    },
                },
            }
        ]
    }


class InboundSmtpListener:
    """``route(recipient)`` answers None to accept or an ``"550 ..."`` reply; ``invoke(event)`` runs the handler."""

    def __init__(
        self,
        *,
        route: Callable[[str], str | None],
        store: Callable[[str, bytes], None],
        invoke: Callable[[dict[str, Any]], Any],
        function_arn: str,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        hostname: str = "inbound-smtp.postroom.test",
    ) -> None:
        self._handler = _InboundHandler(route, store, invoke, function_arn, hostname)
        self._controller = _Controller(
            self._handler,
            hostname=host,
            port=port,
            server_hostname=hostname,
            data_size_limit=SES_MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
        )

    def start(self) -> InboundSmtpListener:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def host(self) -> str:
        return self._controller.hostname


class _InboundHandler:
    def __init__(
        self,
        route: Callable[[str], str | None],
        store: Callable[[str, bytes], None],
        invoke: Callable[[dict[str, Any]], Any],
        function_arn: str,
        hostname: str,
    ) -> None:
        self._route, self._store, self._invoke = route, store, invoke
        self._function_arn = function_arn
        self._hostname = hostname

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = await asyncio.get_running_loop().run_in_executor(None, self._route, address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self._receive, session, envelope)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd logs these at INFO on "mail.log", which `postroom local` does not show: a session that ends on an
        # error must be visible to the operator (one once dropped after ~776 messages with nothing logged).
        log.error("inbound SMTP session error: %r", error, exc_info=error)
        return "451 4.3.0 local error; try again later"

    def _receive(self, session: Session, envelope: Envelope) -> str:
        message_id = ses_message_id()
        now = datetime.now(UTC)
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        # RFC 5321 §4.4: the receiving server prepends Return-Path and its Received line; SES does the same.
        trace = (
            f"Return-Path: <{envelope.mail_from}>\r\n"
            f"Received: from {session.host_name or 'unknown'} ([{peer}])\r\n"
            f" by {self._hostname} with {'E' if session.extended_smtp else ''}SMTP id {message_id}\r\n"
            f" for <{envelope.rcpt_tos[0]}>; {format_datetime(now)}\r\n"
        ).encode()
        content = trace + bytes(envelope.original_content or b"")
        try:
            self._store(message_id, content)
            event = ses_lambda_event(
                message_id=message_id,
                received_at=now,
                mail_from=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                content=content,
                function_arn=self._function_arn,
            )
            # SES sends no such key; it tells the handler that this listener already refused unknown recipients.
            event["postroomOrigin"] = "local"
            self._invoke(event)
        except Exception:  # the client must hear "try later", and the operator see why
            log.exception("inbound handler failed for %s", message_id)
            return "451 4.3.0 could not file the message; try again later"
        return f"250 2.0.0 Ok {message_id}"


class _LoggedSmtp(SMTP):
    def connection_lost(self, error: Exception | None) -> None:
        if error is not None:  # a clean QUIT or EOF has none; anything else is worth a line in the log
            log.warning("inbound SMTP connection from %r lost: %r", getattr(self.session, "peer", None), error)
        super().connection_lost(error)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _LoggedSmtp(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port)
        # Port 0 asks for an ephemeral port; aiosmtpd 1.4 would keep 0 and fail its own readiness check.
        self.port = server.sockets[0].getsockname()[1]
        return server


def start_inbound_listener(
    root: Path, functions: dict[str, LocalFunction], api_port: int, template: dict[str, Any]
) -> InboundSmtpListener | None:
    """Load the template's InboundFunction (from the checkout at ``root``, registered in the stack's ``functions``) and
    put the listener in front of it (None when there are no inbound domains). The port is POSTROOM_INBOUND_SMTP_PORT
    (default 2525; 0 picks a free one, as does an API port of 0)."""
    from postroom.core import aws
    from postroom.local import template as tpl
    from postroom.local.handlers import LocalFunction
    from postroom.mailbox.content_keys import raw_key
    from postroom.receive.routing import Rejection
    from postroom.wiring.receive_wiring import filer
    from postroom.wiring.services import services

    if "InboundFunction" not in (template.get("Resources") or {}):
        return None
    settings = services().settings
    if not settings.inbound_domains:
        return None
    spec = tpl.function_spec(template, "InboundFunction")
    module_name, _, handler = spec.handler.rpartition(".")
    function = LocalFunction(
        "InboundFunction",
        root / spec.code_uri / f"{module_name.replace('.', '/')}.py",
        handler,
        timeout=float(spec.timeout),
        memory=spec.memory_size,
    )
    functions["InboundFunction"] = function
    inbound_filer = filer()

    def route(recipient: str) -> str | None:
        decided = inbound_filer.route(recipient)
        return f"550 {decided.status} {decided.reason}" if isinstance(decided, Rejection) else None

    def store(message_id: str, content: bytes) -> None:
        aws.client("s3").put_object(
            Bucket=settings.inbound_bucket, Key=raw_key(message_id), Body=content, ContentType="message/rfc822"
        )

    # A stack started on an ephemeral API port (tests, several stacks at once) gets an ephemeral SMTP port too.
    default = 0 if api_port == 0 else DEFAULT_PORT
    port = int(os.environ.get("POSTROOM_INBOUND_SMTP_PORT") or default)
    arn = f"arn:aws:lambda:{tpl.DEFAULT_REGION}:{tpl.DEFAULT_ACCOUNT_ID}:function:postroom-local-InboundFunction"
    return InboundSmtpListener(route=route, store=store, invoke=function.invoke, function_arn=arn, port=port).start()
