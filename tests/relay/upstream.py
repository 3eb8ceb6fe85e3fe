"""A loopback stand-in for an upstream provider's submission server (smtp.gmail.com-like): STARTTLS required,
AUTH XOAUTH2 or PLAIN checked, and an OAuth token endpoint that trades a refresh token for access tokens."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from postroom.protocols.submission.smtp_listener import SubmissionController
from postroom.protocols.tlscert import server_context, write_self_signed


@dataclass
class Upstream:
    valid_tokens: set[str] = field(default_factory=set)
    password: str = "app-password"
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)  # "ok:<mech>" / "fail:<mech>"

    # aiosmtpd discovers auth_<MECHANISM> methods on the handler.
    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        raw = args[1] if len(args) > 1 else ""
        decoded = base64.b64decode(raw).decode()
        fields = dict(part.split("=", 1) for part in decoded.split("\x01") if "=" in part)
        token = fields.get("auth", "").removeprefix("Bearer ")
        if token in self.valid_tokens:
            self.logins.append("ok:xoauth2")
            return AuthResult(success=True, auth_data=fields.get("user"))
        self.logins.append("fail:xoauth2")
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == self.password
        self.logins.append(f"{'ok' if ok else 'fail'}:{mechanism.lower()}")
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 2.0.0 OK relayed"


@contextmanager
def upstream_server(directory: Path, *, starttls: bool = True) -> Iterator[tuple[Upstream, int, Path]]:
    certificate, key = write_self_signed(directory)
    handler = Upstream()
    controller = SubmissionController(
        handler,
        hostname="127.0.0.1",
        port=0,
        tls_context=server_context(certificate, key) if starttls else None,
        require_starttls=starttls,
        auth_require_tls=starttls,
        authenticator=handler.authenticate,
    )
    controller.start()
    try:
        yield handler, controller.port, certificate
    finally:
        controller.stop()


@dataclass
class TokenEndpoint:
    refresh_token: str
    issued: list[str] = field(default_factory=list)
    url: str = ""


@contextmanager
def token_endpoint(refresh_token: str, upstream: Upstream) -> Iterator[TokenEndpoint]:
    state = TokenEndpoint(refresh_token)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != state.refresh_token:
                body, status = {"error": "invalid_grant"}, 400
            else:
                token = f"ya29.token-{len(state.issued) + 1}"
                state.issued.append(token)
                upstream.valid_tokens.add(token)
                body, status = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, 200
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
