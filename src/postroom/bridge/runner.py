"""The bridge process: every listener it runs, pointed at one Postroom API endpoint.

Mail clients authenticate with an API key as their password, so the bridge itself holds no secret: it forwards each
client's key to the API, which decides what that key may do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postroom.submission.client import PostroomClient
from postroom.submission.server import SubmissionOptions, submission_server
from postroom.tlscert import server_context, write_self_signed


@dataclass
class BridgeConfig:
    api_url: str
    host: str = "127.0.0.1"
    smtp_port: int | None = 2587  # submission with STARTTLS (what port 587 is on a server)
    smtps_port: int | None = 2465  # submission with implicit TLS (port 465)
    certificate: Path | None = None
    key: Path | None = None
    state_dir: Path = field(default_factory=lambda: Path.home() / ".postroom" / "bridge")
    rate_per_minute: int = 600


class Bridge:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.api = PostroomClient(config.api_url)
        self.listeners: dict[str, Any] = {}

    def start(self) -> Bridge:
        certificate, key = self.config.certificate, self.config.key
        if certificate is None or key is None:
            certificate, key = write_self_signed(self.config.state_dir / "tls")
        self.certificate = certificate
        tls = server_context(certificate, key)
        options = SubmissionOptions(rate_per_minute=self.config.rate_per_minute)
        if self.config.smtp_port is not None:
            self.listeners["smtp"] = submission_server(
                self.api, host=self.config.host, port=self.config.smtp_port, tls_context=tls, options=options
            )
        if self.config.smtps_port is not None:
            self.listeners["smtps"] = submission_server(
                self.api,
                host=self.config.host,
                port=self.config.smtps_port,
                tls_context=tls,
                implicit_tls=True,
                options=options,
            )
        for listener in self.listeners.values():
            listener.start()
        return self

    def stop(self) -> None:
        for listener in self.listeners.values():
            listener.stop()
        self.listeners.clear()

    def ports(self) -> dict[str, int]:
        return {name: listener.port for name, listener in self.listeners.items()}

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
