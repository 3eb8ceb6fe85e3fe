"""Webhook URLs that cannot be turned against Postroom's own network (SSRF).

A URL is refused unless it is https and every address its host resolves to is a global unicast address: no
loopback, private (RFC 1918, ULA), link-local (169.254.0.0/16 holds the instance metadata service), CGNAT, multicast,
reserved or unspecified ones, and IPv4-mapped IPv6 is judged by the IPv4 it maps. The check runs when a subscription
is made and again before every delivery, and the delivery connects to the address that was checked, not to a second
lookup of the name, so DNS rebinding cannot swap in an internal address in between. Only the local stack allows
private addresses and plain http (``POSTROOM_WEBHOOK_ALLOW_PRIVATE``), because there the receiver is on loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

Resolve = Callable[..., list[tuple[Any, ...]]]


class UnsafeUrlError(ValueError):
    """The URL may not be used as a webhook endpoint; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (for Host and TLS SNI)
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]  # vetted addresses to connect to, in resolver order


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_private: bool = False, resolve: Resolve = socket.getaddrinfo) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrlError("webhook URLs must use https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError("put credentials in the signature secret, not in the URL")
    host = parts.hostname
    if not host:
        raise UnsafeUrlError("the URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(f"the host {host!r} does not resolve: {exc}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnsafeUrlError(f"the host {host!r} does not resolve")
    if not allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not _is_public(address):
                raise UnsafeUrlError(
                    f"the host {host!r} resolves to {address}, which is not a public address; webhooks only go to "
                    "public endpoints"
                )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, addresses)
