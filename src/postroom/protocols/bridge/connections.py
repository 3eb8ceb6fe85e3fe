"""Kept-alive HTTP(S) connections for the bridge's API calls and raw-message downloads.

A message list in a mail client is one API call and one download per message. Opening a connection for each (what
``urllib.request.urlopen`` does) costs a TCP handshake, and against a real endpoint a TLS handshake too - about three
round trips before the request, twice per message (API, then the presigned S3 URL). Here a connection is taken from an
idle list per host, used for one request, and put back once its response has been read, so the next request on it
costs one round trip. Any thread may use the pool; a connection serves one thread at a time.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass

MAX_IDLE_PER_HOST = 16  # the bridge downloads 8 at a time; twice that covers the API and S3 hosts' bursts
IDLE_SECONDS = 30.0  # an idle connection older than this is closed, not reused (servers drop idle ones too)
# A kept-alive connection the server closed meanwhile fails at once, before the server saw the request; such a request
# is sent once more on a new connection. Only for methods that may be repeated (RFC 9110 9.2.2): a POST is sent on
# a new connection in the first place, so it is never sent twice.
_REPEATABLE = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH"})  # PATCH: the API's PATCH sets absolute values
_STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Connections:
    def __init__(self, *, timeout: float = 30.0, max_idle_per_host: int = MAX_IDLE_PER_HOST) -> None:
        self.timeout = timeout
        self.max_idle = max_idle_per_host
        self._idle: dict[tuple[str, str], list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> Response:
        """One request; redirects are answered, not followed. Raises OSError (and http.client.HTTPException) when
        the server cannot be reached or answers with something that is not HTTP."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {url!r}")
        host = (parts.scheme, parts.netloc)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        method = method.upper()
        connection, reused = (None, False) if method not in _REPEATABLE else self._take(host)
        if connection is None:
            connection = self._open(host)
        try:
            return self._exchange(host, connection, method, target, headers or {}, body)
        except _STALE:
            if not reused:
                raise
        return self._exchange(host, self._open(host), method, target, headers or {}, body)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, connection in connections:
                connection.close()

    # -----------------------------------------------------------------------------------------------------------
    def _exchange(
        self,
        host: tuple[str, str],
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> Response:
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            raise
        answer = Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if response.will_close:
            connection.close()
        else:
            self._put(host, connection)
        return answer

    def _open(self, host: tuple[str, str]) -> http.client.HTTPConnection:
        scheme, netloc = host
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._tls)
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _take(self, host: tuple[str, str]) -> tuple[http.client.HTTPConnection | None, bool]:
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(host, [])
            expired = [connection for since, connection in idle if now - since >= IDLE_SECONDS]
            idle[:] = [(since, connection) for since, connection in idle if now - since < IDLE_SECONDS]
            found = idle.pop()[1] if idle else None  # the most recently used: the least likely to have been dropped
        for connection in expired:
            connection.close()
        return found, found is not None

    def _put(self, host: tuple[str, str], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(host, [])
            if len(idle) < self.max_idle:
                idle.append((time.monotonic(), connection))
                return
        connection.close()
