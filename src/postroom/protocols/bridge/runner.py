"""The bridge process: every listener it runs, pointed at one Postroom API endpoint.

Mail clients authenticate with an API key as their password, so the bridge itself holds no secret: it forwards each
client's key to the API, which decides what that key may do.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postroom.protocols.bridge import imap, pop3
from postroom.protocols.bridge.cache import DEFAULT_MAX_BYTES
from postroom.protocols.bridge.mailbox_client import BridgeClient
from postroom.protocols.bridge.reactor import call
from postroom.protocols.submission.api_client import PostroomClient
from postroom.protocols.submission.smtp_listener import SubmissionHandler, SubmissionOptions, submission_server
from postroom.protocols.tlscert import server_context, write_self_signed


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class TwistedListener:
    """A Twisted protocol factory listening on the shared reactor, with the submission listeners' start/stop/port."""

    def __init__(self, factory: Any, host: str, port: int, tls: Any = None) -> None:
        self.factory, self.host, self.requested, self.tls = factory, host, port, tls
        self._port: Any = None

    def start(self) -> TwistedListener:
        from twisted.internet import reactor

        if self.tls is None:
            self._port = call(reactor.listenTCP, self.requested, self.factory, 50, self.host)
        else:  # implicit TLS (RFC 8314): the handshake comes first, nothing is ever said in the clear
            self._port = call(reactor.listenSSL, self.requested, self.factory, self.tls, 50, self.host)
        return self

    def stop(self) -> None:
        if self._port is not None:
            call(self._port.stopListening)
            self._port = None

    @property
    def port(self) -> int:
        return int(self._port.getHost().port)


@dataclass
class BridgeConfig:
    api_url: str
    host: str = "127.0.0.1"
    smtp_port: int | None = 2587  # submission with STARTTLS (what port 587 is on a server)
    smtps_port: int | None = 2465  # submission with implicit TLS (port 465)
    imap_port: int | None = 2143  # IMAP4rev1 without TLS (port 143): loopback only
    pop3_port: int | None = 2110  # POP3 without TLS (port 110): loopback only
    imaps_port: int | None = 2993  # IMAP over implicit TLS (port 993)
    pop3s_port: int | None = 2995  # POP3 over implicit TLS (port 995)
    idle_poll_seconds: float = imap.IDLE_CHECK_SECONDS  # how often IMAP IDLE reads the mailbox's state
    certificate: Path | None = None
    key: Path | None = None
    state_dir: Path = field(default_factory=lambda: Path.home() / ".postroom" / "bridge")
    rate_per_minute: int = 600
    cache_bytes: int = DEFAULT_MAX_BYTES  # received messages kept under state_dir/mail for the next session; 0: none


class Bridge:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.api = PostroomClient(config.api_url)
        # IMAP and POP3 share kept-alive connections and the messages already downloaded (see bridge/api.py).
        self.mail_api = BridgeClient.for_state_dir(config.api_url, config.state_dir, config.cache_bytes)
        self.listeners: dict[str, Any] = {}

    def start(self) -> Bridge:
        plain = self.config.imap_port is not None or self.config.pop3_port is not None
        if plain and not is_loopback(self.config.host):
            # The plain IMAP and POP3 ports speak no TLS: the API key a client sends as its password must not cross a
            # network in the clear. Off loopback, only the implicit-TLS ports may be on.
            raise ValueError(
                f"plain IMAP and POP3 listen on loopback only, not {self.config.host}: turn them off "
                "(--imap-port 0 --pop3-port 0) and use IMAPS/POP3S"
            )
        certificate, key = self.config.certificate, self.config.key
        if certificate is None or key is None:
            certificate, key = write_self_signed(self.config.state_dir / "tls")
        self.certificate = certificate
        tls = server_context(certificate, key)
        # One handler for both submission ports and its failed-login limiter for every listener: a password guesser
        # locked out of IMAP is locked out of SMTP and POP3 too, and a key's sending rate holds across ports.
        handler = SubmissionHandler(self.api, SubmissionOptions(rate_per_minute=self.config.rate_per_minute))
        self.failed_logins = handler.failed_logins
        if self.config.smtp_port is not None:
            self.listeners["smtp"] = submission_server(
                self.api, host=self.config.host, port=self.config.smtp_port, tls_context=tls, handler=handler
            )
        if self.config.smtps_port is not None:
            self.listeners["smtps"] = submission_server(
                self.api,
                host=self.config.host,
                port=self.config.smtps_port,
                tls_context=tls,
                implicit_tls=True,
                handler=handler,
            )
        for listener in self.listeners.values():
            listener.start()
        if self.config.imap_port is not None:
            imap_factory = imap.ServerFactory(
                self.mail_api, idle_poll_seconds=self.config.idle_poll_seconds, failures=self.failed_logins
            )
            self.listeners["imap"] = TwistedListener(imap_factory, self.config.host, self.config.imap_port).start()
        if self.config.pop3_port is not None:
            pop3_factory = pop3.ServerFactory(self.mail_api, failures=self.failed_logins)
            self.listeners["pop3"] = TwistedListener(pop3_factory, self.config.host, self.config.pop3_port).start()
        if self.config.imaps_port is not None or self.config.pop3s_port is not None:
            from twisted.internet import ssl

            twisted_tls = ssl.DefaultOpenSSLContextFactory(str(key), str(certificate))
            if self.config.imaps_port is not None:
                factory = imap.ServerFactory(
                    self.mail_api, idle_poll_seconds=self.config.idle_poll_seconds, failures=self.failed_logins
                )
                listener = TwistedListener(factory, self.config.host, self.config.imaps_port, twisted_tls)
                self.listeners["imaps"] = listener.start()
            if self.config.pop3s_port is not None:
                listener = TwistedListener(
                    pop3.ServerFactory(self.mail_api, failures=self.failed_logins),
                    self.config.host,
                    self.config.pop3s_port,
                    twisted_tls,
                )
                self.listeners["pop3s"] = listener.start()
        return self

    def stop(self) -> None:
        for listener in self.listeners.values():
            listener.stop()
        self.listeners.clear()
        self.mail_api.close()

    def ports(self) -> dict[str, int]:
        return {name: listener.port for name, listener in self.listeners.items()}

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
