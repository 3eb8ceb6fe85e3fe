"""POST a webhook to a vetted target with the standard library: connect to the checked address (not a fresh lookup
of the name), send Host and TLS SNI for the name, follow no redirects, read at most a little of the answer."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postroom.webhooks.url_guard import Target

USER_AGENT = "Postroom-Webhooks/1"
MAX_RESPONSE_BYTES = 1024  # kept in the attempt history; the rest of the body is not read


@dataclass(frozen=True)
class Response:
    status: int | None  # None: no HTTP answer (connection refused, timeout, TLS failure)
    body: str
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float) -> Response:
    started = time.monotonic()
    last_error = "no address to connect to"
    for address in target.addresses:
        if target.scheme == "https":
            connection: http.client.HTTPConnection = _PinnedHTTPSConnection(
                target, address, timeout, ssl.create_default_context()
            )
        else:
            connection = _PinnedHTTPConnection(target, address, timeout)
        try:
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            )
            answer = connection.getresponse()
            text = answer.read(MAX_RESPONSE_BYTES).decode("utf-8", "replace")
            return Response(answer.status, text, None, int((time.monotonic() - started) * 1000))
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"{address}: {type(exc).__name__}: {exc}"
        finally:
            connection.close()
    return Response(None, "", last_error, int((time.monotonic() - started) * 1000))
