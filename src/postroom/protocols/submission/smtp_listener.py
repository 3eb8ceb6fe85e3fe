"""The SMTP submission listener (RFC 6409): ``AUTH PLAIN``/``LOGIN`` with a Postroom API key as the password, then
each message goes to ``POST /v1/messages/raw`` — the same validation, identity and size rules as the HTTP API.

Protocol work is aiosmtpd's; this module only decides: who may log in (API keys with the ``messages:send`` scope,
checked against the API), how often (per-key message rate, per-address failed-login lockout), and what the API's
answer means in SMTP terms. AUTH is refused before TLS (aiosmtpd's ``auth_require_tls``) except on loopback, where
nothing travels over a network.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from postroom.protocols.submission.api_client import ApiAnswer, PostroomClient

log = logging.getLogger("postroom.protocols.submission")

DATA_SIZE_DEFAULT = 30 * 1024 * 1024  # what fits the raw endpoint on AWS is smaller (6 MB); see README
MAX_RECIPIENTS = 50  # the API's own limit; refusing at RCPT tells the client which recipient was one too many
FAILED_LOGINS_ALLOWED = 5  # per client address within FAILED_LOGIN_WINDOW, then AUTH is refused for that window
FAILED_LOGIN_WINDOW = 300.0
KEY_CACHE_SECONDS = 60.0  # a key checked against the API is trusted this long without asking again
SWEEP_EVERY = 1024  # rate-limiter operations between sweeps of keys whose window has passed
QUEUED_KEPT = 1000  # message ids remembered per handler (a listener may run for months)
SEND_SCOPE = "messages:send"
SENT_COPY_KEYWORD = "$seen"  # the sender has read what they wrote
NO_SENT_COPY_SECONDS = 300.0  # a key refused a Sent copy is not asked again for this long


@dataclass
class SubmissionOptions:
    rate_per_minute: int = 600  # messages per API key per minute
    data_size_limit: int = DATA_SIZE_DEFAULT
    hostname: str = "localhost"
    loopback_auth_without_tls: bool = True  # a client on the same machine may log in before STARTTLS
    # A copy of each message sent is filed in the sender's Sent (when the key reaches that mailbox), so a client that
    # does not APPEND its own copy still shows it, and the other devices see it too.
    file_sent: bool = True


class RateLimiter:
    """Sliding window of timestamps per key: small, exact, and enough for one listener process."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._operations = 0

    def __len__(self) -> int:
        """Keys tracked now."""
        with self._lock:
            return len(self._events)

    def _trim(self, key: str, now: float) -> deque[float]:
        self._operations += 1
        if self._operations % SWEEP_EVERY == 0:
            # Every client address that ever failed a login would otherwise stay forever, and an internet-facing
            # listener meets very many.
            for stale in [k for k, events in self._events.items() if not events or now - events[-1] > self.window]:
                del self._events[stale]
        events = self._events[key]
        while events and now - events[0] > self.window:
            events.popleft()
        return events

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._trim(key, now)
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def count(self, key: str) -> int:
        with self._lock:
            return len(self._trim(key, time.monotonic()))

    def add(self, key: str) -> None:
        with self._lock:
            self._trim(key, time.monotonic()).append(time.monotonic())


def smtp_reply(answer: ApiAnswer) -> str:
    """The API's answer to a submitted message, as the SMTP reply to DATA (RFC 3463 enhanced codes)."""
    # SMTP replies are ASCII (RFC 5321 §4.2): the API's prose may cite "§", so spell it out.
    prose = " ".join(answer.error_message.replace("§", "section ").split())[:400] or "refused"
    text = prose.encode("ascii", "replace").decode("ascii")
    if answer.status == 202:
        return f"250 2.0.0 queued as {answer.body.get('id')}"
    if answer.status in (400, 422):
        return f"554 5.6.0 {text}"
    if answer.status == 401:
        return f"535 5.7.8 {text}"
    if answer.status == 403 and answer.error_code == "sender_not_allowed":
        return f"553 5.7.1 {text}"
    if answer.status == 403:
        return f"550 5.7.1 {text}"
    if answer.status == 413:
        return f"552 5.3.4 {text}"
    if answer.status == 429:
        return f"451 4.7.1 {text}"
    # Unreachable or 5xx: nothing was accepted, so the client keeps the message and retries (RFC 5321 §4.2.5).
    return f"451 4.3.0 temporarily unable to queue the message: {text}"


class SubmissionHandler:
    def __init__(self, api: PostroomClient, options: SubmissionOptions) -> None:
        self.api = api
        self.options = options
        self.rates = RateLimiter(options.rate_per_minute, 60.0)
        self.failed_logins = RateLimiter(FAILED_LOGINS_ALLOWED, FAILED_LOGIN_WINDOW)
        self._keys: dict[str, float] = {}
        # (key digest, address) pairs whose Sent the API refused, until when: an application's sending key that has
        # no mailbox scope costs one refused call per NO_SENT_COPY_SECONDS, not one per message.
        self._no_sent_copy: dict[tuple[str, str], float] = {}
        # The latest ids answered 250, in order (status lines and tests); trimmed in batches to the newest QUEUED_KEPT.
        self.queued: list[str] = []
        self.queued_total = 0
        # Open connections (the SMTP protocol objects), counted so a stopping service can wait for them to end.
        # Listeners sharing this handler each run their own event loop thread, hence the lock.
        self._connections: set[SMTP] = set()
        self._connections_lock = threading.Lock()
        self.draining = False  # set when the service stops: no new transaction starts

    # --- connections -------------------------------------------------------------------------------------------
    def connection_opened(self, protocol: SMTP) -> None:
        with self._connections_lock:
            self._connections.add(protocol)

    def connection_closed(self, protocol: SMTP) -> None:
        with self._connections_lock:
            self._connections.discard(protocol)

    @property
    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    # --- AUTH ------------------------------------------------------------------------------------------------
    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        peer = str(session.peer[0]) if session.peer else "?"
        if self.failed_logins.count(peer) >= FAILED_LOGINS_ALLOWED:
            return AuthResult(success=False, handled=False, message="454 4.7.0 too many failed logins; try later")
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        key = auth_data.password.decode("utf-8", "replace")
        # aiosmtpd calls this synchronously in its event loop: a cached key answers at once, a new one costs one
        # short API call (a bridge or submission service serves few clients, so this is acceptable).
        verdict = True if self._keys.get(key, 0.0) > time.monotonic() else self._check_key(key)
        if verdict:
            return AuthResult(success=True, auth_data=key)
        if verdict is None:
            # The API could not say (unreachable, 5xx): not the client's fault, so no lockout count, and a 4xx the
            # client retries (RFC 4954 §6).
            log.warning("SMTP login not checked: the API did not answer", extra={"peer": peer})
            return AuthResult(success=False, handled=False, message="454 4.7.0 temporary authentication failure")
        self.failed_logins.add(peer)
        log.info("failed SMTP login", extra={"peer": peer, "mechanism": mechanism})  # never log the password
        return AuthResult(success=False, handled=False, message="535 5.7.8 authentication credentials invalid")

    def _check_key(self, key: str) -> bool | None:
        """True: a key that may send; False: refused; None: the API did not answer (unreachable or 5xx)."""
        answer = self.api.whoami(key)
        if answer.status == 0 or answer.status >= 500:
            return None
        if answer.status != 200 or SEND_SCOPE not in answer.body.get("scopes", []):
            return False
        self._keys[key] = time.monotonic() + KEY_CACHE_SECONDS
        return True

    # --- transaction ---------------------------------------------------------------------------------------------
    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.draining:
            # RFC 5321 §3.8: 421 tells the client to close and try again later; through the load balancer "later" is
            # another task. Nothing of this transaction was accepted yet, so nothing is lost.
            return "421 4.3.2 service shutting down; try again"
        if not self.rates.allow(str(session.auth_data)):
            return f"450 4.7.1 rate limit of {self.options.rate_per_minute} messages per minute reached; try later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 at most {MAX_RECIPIENTS} recipients per message"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        # The HTTP call runs in a thread so other sessions keep being served meanwhile.
        answer = await loop.run_in_executor(
            None, self.api.submit_raw, str(session.auth_data), content, envelope.mail_from or "", envelope.rcpt_tos
        )
        reply = smtp_reply(answer)
        if answer.status == 202 and self.options.file_sent:
            # Before the reply: once the client hears 250 the copy is in Sent (or the key cannot reach it).
            await loop.run_in_executor(None, self._file_sent, str(session.auth_data), envelope.mail_from or "", content)
        if answer.status == 202:
            self.queued.append(str(answer.body.get("id")))
            self.queued_total += 1
            if len(self.queued) > 2 * QUEUED_KEPT:
                del self.queued[:-QUEUED_KEPT]
        return reply

    def _file_sent(self, key: str, mail_from: str, content: bytes) -> None:
        address = mail_from.strip().strip("<>").lower()
        if "@" not in address:
            return  # a null sender (a bounce): nobody's Sent
        refused = (hashlib.sha256(key.encode()).hexdigest(), address)
        if self._no_sent_copy.get(refused, 0.0) > time.monotonic():
            return
        answer = self.api.file_copy(key, f"{address}:sent", content, [SENT_COPY_KEYWORD])
        if answer.status in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND):
            if len(self._no_sent_copy) > QUEUED_KEPT:
                self._no_sent_copy.clear()  # bounded: a listener may see many keys over months
            self._no_sent_copy[refused] = time.monotonic() + NO_SENT_COPY_SECONDS
        if answer.status != 201:
            # 403/404: the key sends for an address whose mailboxes it does not reach (or none is registered). The
            # message itself is on its way; only the copy is skipped.
            log.info("sent copy not filed", extra={"status": answer.status, "code": answer.error_code})


class _SubmissionSMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if isinstance(self.event_handler, SubmissionHandler):
            self.event_handler.connection_opened(self)
        if transport.get_extra_info("ssl_object") is not None:
            # Implicit TLS (port 465): encrypted from the first byte. aiosmtpd counts only STARTTLS as TLS, so without
            # this it would refuse AUTH there to every client not on loopback.
            self._auth_require_tls = False
        peer = transport.get_extra_info("peername")
        allowed = getattr(self.event_handler, "options", SubmissionOptions()).loopback_auth_without_tls
        if allowed and peer and ipaddress.ip_address(peer[0]).is_loopback:
            # Nothing leaves the machine on loopback, so a local mail client may log in without STARTTLS.
            self._auth_require_tls = False

    def connection_lost(self, error: Exception | None) -> None:
        if isinstance(self.event_handler, SubmissionHandler):
            self.event_handler.connection_closed(self)
        super().connection_lost(error)


class SubmissionController(Controller):
    """aiosmtpd's controller with our SMTP class; ``port=0`` picks a free port (read ``.port`` after start)."""

    def factory(self) -> SMTP:
        return _SubmissionSMTP(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Coroutine[Any, Any, asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def stop_accepting(self) -> None:
        """Close the listening socket (from any thread); sessions already open go on until they end or ``stop()``."""
        server = self.server
        if server is not None:
            self.loop.call_soon_threadsafe(server.close)


def submission_server(
    api: PostroomClient,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls_context: Any = None,
    implicit_tls: bool = False,
    options: SubmissionOptions | None = None,
    handler: SubmissionHandler | None = None,
) -> SubmissionController:
    """A listener for port 587 (STARTTLS when ``tls_context`` is given) or 465 (``implicit_tls``).

    Listeners given the same ``handler`` share its per-key rate limit and its failed-login lockout (otherwise each
    port would grant its own allowance); ``options`` then come from that handler.
    """
    if handler is None:
        handler = SubmissionHandler(api, options or SubmissionOptions())
    options = handler.options
    return SubmissionController(
        handler,
        hostname=host,
        port=port,
        ssl_context=tls_context if implicit_tls else None,
        server_hostname=options.hostname,
        tls_context=None if implicit_tls else tls_context,
        authenticator=handler.authenticate,
        auth_required=True,
        auth_require_tls=True,
        data_size_limit=options.data_size_limit,
        enable_SMTPUTF8=False,
        ident="Postroom submission",
    )
