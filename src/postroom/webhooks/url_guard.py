"""Webhook URLs that cannot be turned against Postroom's own network (SSRF).

A URL is refused unless it is https and every address its host resolves to is a global unicast address: no
loopback, private (RFC 1918, ULA), link-local (169.254.0.0/16 holds the instance metadata service), CGNAT, multicast,
reserved or unspecified ones. An IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4, NAT64, IPv4-compatible)
is judged by the IPv4 address it leads to. The check runs when a subscription
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


# IPv6 forms that carry an IPv4 address in their low 32 bits and that ``ipaddress`` has no property for (it has
# ``ipv4_mapped`` and ``sixtofour``): a packet to one of them ends up at that IPv4 address, so it is that address
# that must be public. NAT64's well-known prefix (RFC 6052 §2.1, a /96); IPv4-compatible addresses (RFC 4291
# §2.5.5.1, deprecated but still parsed by stacks).
_LOW_32_BITS_IPV4 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("::/96"))
# NAT64's local-use prefix (RFC 8215) places the IPv4 address where each operator chooses; it only ever reaches
# a local network, so it is never a public endpoint (Python 3.13 calls it private; 3.11 and 3.12 do not).
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64 or IPv4-compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _LOW_32_BITS_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL_USE:
            return False
        # Judged by the IPv4 address it leads to: "2002:a9fe:a9fe::" is global as IPv6 but reaches 169.254.169.254.
        address = embedded_ipv4(address) or address
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
