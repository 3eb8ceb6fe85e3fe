"""A real HTTPS server on loopback standing in for the ``mta-sts.<domain>`` web servers of several domains.

It answers by the request's Host header (its name, port dropped), so one server on 127.0.0.1 serves every domain's
policy; the loopback DNS server points each ``mta-sts.<domain>`` at it. Responses are scripted per host: status,
media type, body, and extra headers (a redirect's Location).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

__all__ = ["HttpsServer", "Response"]


@dataclass(frozen=True)
class Response:
    body: bytes | str = b""
    status: int = 200
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


class HttpsServer:
    """``HttpsServer(context)``: serves ``routes[(host, path)]`` over TLS on 127.0.0.1 and an ephemeral port."""

    def __init__(self, context: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        self._context = context
        self._host = host
        self._routes: dict[tuple[str, str], Response] = {}
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (host, path) of every request that completed a TLS handshake
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, host: str, path: str, response: Response) -> None:
        with self._lock:
            self._routes[(host.lower(), path)] = response

    def clear(self) -> None:
        with self._lock:
            self._routes.clear()
            self.requests.clear()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the HTTPS server is not running")
        return self._server.server_address[1]

    def start(self) -> Self:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server looks for
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
                with owner._lock:
                    owner.requests.append((host, self.path))
                    response = owner._routes.get((host, self.path), Response(b"not found", status=404))
                body = response.body.encode() if isinstance(response.body, str) else response.body
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # the base class's signature
                pass

        server = ThreadingHTTPServer((self._host, 0), Handler)
        server.daemon_threads = True
        server.socket = self._context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
