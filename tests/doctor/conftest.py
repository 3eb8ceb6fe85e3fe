"""A DNS server on loopback holding good and broken sending domains, and DKIM keys of several sizes."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from postroom.doctor.checks import DoctorOptions, diagnose
from postroom.doctor.lookup import DnsLookup
from postroom.doctor.report import Report
from postroom.testing.dns_server import LoopbackDnsServer, Zone

AMAZONSES_SPF = "v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 ip4:54.240.0.0/18 -all"
EGRESS_IP = "203.0.113.7"


def dkim_key(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def pkcs1_key(bits: int) -> str:
    """A bare PKCS#1 RSAPublicKey with a modulus of ``bits`` bits (too small for cryptography to generate)."""

    def integer(value: int) -> bytes:
        body = value.to_bytes(value.bit_length() // 8 + 1, "big")
        return b"\x02" + bytes([len(body)]) + body

    content = integer((1 << (bits - 1)) | 1) + integer(65537)
    return base64.b64encode(b"\x30" + bytes([len(content)]) + content).decode()


@pytest.fixture(scope="session")
def keys() -> dict[int, str]:
    return {2048: dkim_key(2048), 1024: dkim_key(1024), 512: pkcs1_key(512)}


@pytest.fixture(scope="module")
def _server() -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer() as server:
        yield server


@pytest.fixture
def dns(_server: LoopbackDnsServer) -> LoopbackDnsServer:
    """The module's DNS server with amazonses.com's SPF record; each test adds its domain's records."""
    _server.set_zone({"amazonses.com": {"TXT": [AMAZONSES_SPF]}})
    return _server


@pytest.fixture
def doctor(dns: LoopbackDnsServer) -> Callable[..., Report]:
    """``doctor(zone, domain, **options)``: publish ``zone``, then diagnose ``domain``."""

    def run(zone: Zone, domain: str, budget: float = 10.0, **options: object) -> Report:
        dns.update_zone(zone)
        lookup = DnsLookup([dns.nameserver], budget_seconds=budget)
        return diagnose(domain, DoctorOptions(**options), lookup)  # type: ignore[arg-type]

    return run
