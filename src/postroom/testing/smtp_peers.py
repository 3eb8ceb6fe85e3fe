"""Loopback SMTP peers built on aiosmtpd: a sink that records what it receives and misbehaves on request.

Tests script the sink per stage ("RCPT for bad@ gets 550", "the first two DATA get 451", "drop the connection at
DATA", "stall the greeting"); the local stack runs one with ``outbox=`` as the sandbox that captures all outbound mail.
The scripting goes through aiosmtpd's handler hooks (``handle_EHLO``/``handle_MAIL``/``handle_RCPT``/``handle_DATA``);
only the greeting, which aiosmtpd has no hook for, is scripted in an ``SMTP`` subclass.
"""

# aiosmtpd finds its hooks by their exact names (handle_EHLO, handle_MAIL, ...):
# ruff: noqa: N802

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import DATA_SIZE_DEFAULT, SMTP, Envelope, Session

from postroom.protocols.tlscert import write_self_signed

__all__ = ["Action", "ReceivedMessage", "RecordingSink", "Stage", "self_signed_certificate"]

SINK_HOSTNAME = "sink.postroom.test"
STALL_SECONDS_DEFAULT = 30.0  # longer than any client timeout a test sets
WAIT_TIMEOUT_DEFAULT = 5.0


class Stage(StrEnum):
    GREETING = "greeting"
    EHLO = "ehlo"  # EHLO only: scripting a rejection here makes the client fall back to HELO
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # after the message data has been received, in place of the final reply


class Action(Enum):
    DROP = "drop"  # close the connection without a reply
    STALL = "stall"  # say nothing for ``stall_seconds``, then carry on as normal


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes  # as the client meant it: dot-stuffing undone (RFC 5321 §4.5.2), nothing else changed
    mail_options: tuple[str, ...]  # upper-cased by aiosmtpd, e.g. ("SIZE=1234",)
    tls: bool  # whether the session had gone through STARTTLS
    peer: tuple[str, int]
    connection: int  # which of the sink's SMTP sessions (1, 2, ...) carried it


@dataclass
class _Rule:
    stage: Stage
    reply: str | Action
    match: str  # for MAIL and RCPT: only addresses containing this (case-insensitive); "" matches all
    remaining: int | None  # None: every time


class RecordingSink:
    """An aiosmtpd server on ``host`` (default 127.0.0.1) and ``port`` (0 = pick a free one) that records messages."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = SINK_HOSTNAME,
        starttls: bool = False,
        require_starttls: bool = False,
        data_size_limit: int | None = DATA_SIZE_DEFAULT,
        smtputf8: bool = True,
        outbox: Path | None = None,
        stall_seconds: float = STALL_SECONDS_DEFAULT,
        tls_context: ssl.SSLContext | None = None,  # default: a self-signed certificate for ``hostname``
    ) -> None:
        self.host = host
        self.hostname = hostname
        self.stall_seconds = stall_seconds
        self._outbox = outbox
        self._next_file = _next_file_number(outbox) if outbox is not None else 1
        self._changed = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._rules: list[_Rule] = []
        self._connections = 0
        self._live: set[_SinkSMTP] = set()  # touched on the event loop's thread only
        if tls_context is None and (starttls or require_starttls):
            tls_context = _server_tls_context(hostname)
        self._controller = _SinkController(
            self,
            host,
            port,
            server_hostname=hostname,
            tls_context=tls_context,
            require_starttls=require_starttls,
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=smtputf8,
        )
        self._running = False

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._outbox is not None:
            self._outbox.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        if not self._running:
            return
        self.drop_connections()  # so that no session task is left pending when the loop stops
        self._controller.stop()
        self._running = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._controller.port

    # -- what arrived ----------------------------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """SMTP sessions opened so far (connections that got as far as EHLO or HELO)."""
        return self._connections

    def wait_for(self, count: int, timeout: float = WAIT_TIMEOUT_DEFAULT) -> list[ReceivedMessage]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{self.hostname} received {len(self._messages)} messages, expected {count}")
            return list(self._messages)

    # -- scripting -------------------------------------------------------------------------------------------------

    def script(self, stage: Stage, reply: str | Action, *, match: str = "", times: int | None = None) -> None:
        """From now on, answer ``stage`` with ``reply`` (or do ``reply``), the first ``times`` times or always.

        ``sink.script(Stage.RCPT, "550 5.1.1 no such user", match="bad@")``,
        ``sink.script(Stage.DATA, "451 4.3.0 try later", times=2)``, ``sink.script(Stage.GREETING, Action.STALL)``.
        The first rule that matches wins.
        """
        with self._changed:
            self._rules.append(_Rule(stage, reply, match.lower(), times))

    def drop_connections(self, timeout: float = WAIT_TIMEOUT_DEFAULT) -> None:
        """Close every open session from the server side (as an idle timeout would), and wait until they are gone."""
        future = asyncio.run_coroutine_threadsafe(self._drop_all(), self._controller.loop)
        future.result(timeout)

    async def _drop_all(self) -> None:
        for server in list(self._live):
            if server.transport is not None:
                cast(
                    asyncio.Transport, server.transport
                ).abort()  # not close(): after STARTTLS that waits for the client's close_notify
        while self._live:
            await asyncio.sleep(0.005)

    # -- called from the event loop --------------------------------------------------------------------------------

    def _take(self, stage: Stage, address: str) -> str | Action | None:
        with self._changed:
            for rule in self._rules:
                if rule.stage is not stage or rule.match not in address.lower():
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                return rule.reply
        return None

    async def _scripted(self, server: SMTP, stage: Stage, address: str = "") -> str | None:
        """The scripted reply for this command, or None to go on as normal (after stalling, if so scripted)."""
        reply = self._take(stage, address)
        if reply is Action.DROP:
            assert server.transport is not None
            cast(asyncio.Transport, server.transport).abort()
            await asyncio.Event().wait()  # connection_lost() cancels this session's task
        if reply is Action.STALL:
            await asyncio.sleep(self.stall_seconds)
            return None
        assert not isinstance(reply, Action), reply  # DROP never returns (above); no other action is scripted here
        return reply

    def _opened(self, server: _SinkSMTP) -> None:
        self._live.add(server)

    def _closed(self, server: _SinkSMTP) -> None:
        self._live.discard(server)

    def _hello(self, server: SMTP) -> None:
        if isinstance(server, _SinkSMTP) and not server.connection_number:
            with self._changed:
                self._connections += 1
                server.connection_number = self._connections

    def _record(self, server: SMTP, session: Session, envelope: Envelope) -> int:
        host, port = session.peer[:2] if isinstance(session.peer, tuple) else (str(session.peer), 0)
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=bytes(envelope.original_content or b""),
            mail_options=tuple(envelope.mail_options),
            tls=session.ssl is not None,
            peer=(str(host), int(port)),
            connection=server.connection_number if isinstance(server, _SinkSMTP) else 0,
        )
        with self._changed:
            self._messages.append(message)
            number = len(self._messages)
            if self._outbox is not None:
                _write_atomically(self._outbox / f"{self._next_file}.eml", message.content)
                self._next_file += 1
            self._changed.notify_all()
        return number


class _SinkHandler:
    """aiosmtpd handler: the scripted reply if there is one, else what aiosmtpd would do, and record DATA."""

    def __init__(self, sink: RecordingSink) -> None:
        self._sink = sink

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        if (reply := await self._sink._scripted(server, Stage.EHLO, hostname)) is not None:
            return [reply]
        session.host_name = hostname  # the hook's duty, per aiosmtpd's docs
        self._sink._hello(server)
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        session.host_name = hostname
        self._sink._hello(server)
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if (reply := await self._sink._scripted(server, Stage.MAIL, address)) is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if (reply := await self._sink._scripted(server, Stage.RCPT, address)) is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if (reply := await self._sink._scripted(server, Stage.DATA)) is not None:
            return reply
        number = self._sink._record(server, session, envelope)
        return f"250 2.0.0 OK: queued as {number}"


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP, plus a scripted greeting and the bookkeeping of open sessions."""

    def __init__(self, sink: RecordingSink, handler: _SinkHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink = sink
        self.connection_number = 0  # set at the first EHLO/HELO

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # aiosmtpd calls this again on the TLS transport after STARTTLS
        super().connection_made(transport)
        if first:
            self.sink._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._closed(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        # aiosmtpd sends its 220 banner first thing in _handle_client() and offers no hook for it.
        reply = await self.sink._scripted(self, Stage.GREETING)
        if reply is not None:
            # RFC 5321 §3.1: a server refusing service says so in the greeting (421/554) and closes.
            await self.push(reply)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _SinkController(Controller):
    def __init__(self, sink: RecordingSink, host: str, port: int, **smtp_kwargs: Any) -> None:
        super().__init__(_SinkHandler(sink), hostname=host, port=port, **smtp_kwargs)
        self._sink = sink

    def factory(self) -> SMTP:
        return _SinkSMTP(self._sink, self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Coroutine[Any, Any, asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port)
        # Port 0 asks for an ephemeral port; aiosmtpd 1.4 would keep 0 and fail its own readiness check.
        self.port = server.sockets[0].getsockname()[1]
        return server


@functools.cache
def self_signed_certificate(hostname: str = SINK_HOSTNAME) -> tuple[Path, Path]:
    """``(certificate, key)`` PEM files for ``hostname`` (plus localhost and the loopback IPs), made once a process."""
    directory = Path(tempfile.mkdtemp(prefix="postroom-sink-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return write_self_signed(directory, hostname)


def _server_tls_context(hostname: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # server side; clients are not asked for certs
    context.load_cert_chain(*self_signed_certificate(hostname))
    return context


def _next_file_number(outbox: Path) -> int:
    numbers = [int(path.stem) for path in outbox.glob("*.eml") if path.stem.isdigit()]
    return max(numbers, default=0) + 1


def _write_atomically(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")  # a watcher of *.eml never sees half a message
    partial.write_bytes(content)
    os.replace(partial, path)
