"""SPF check_host() against records on the loopback DNS server: the mechanisms, their CIDR forms, include and
redirect, and what the doctor refuses to guess."""

from __future__ import annotations

import pytest

from postroom.doctor.lookup import DnsLookup
from postroom.doctor.spf import SpfError, SpfResult, check_host, parse_spf
from postroom.testing.dns_server import LoopbackDnsServer

ZONE = {
    "spf.example": {
        "TXT": ["v=spf1 ip4:192.0.2.0/25 a:web.spf.example/30 mx//64 include:partner.example ~all"],
        "MX": [(10, "mx.spf.example")],
    },
    "web.spf.example": {"A": ["198.51.100.9"]},
    "mx.spf.example": {"A": ["198.51.100.200"], "AAAA": ["2001:db8::25"]},
    "partner.example": {"TXT": ["v=spf1 ip6:2001:db8:1::/48 -all"]},
    "redirected.example": {"TXT": ["v=spf1 redirect=spf.example"]},
    "macro.example": {"TXT": ["v=spf1 exists:%{i}.rbl.example -all"]},
}


@pytest.fixture
def lookup(dns: LoopbackDnsServer) -> DnsLookup:
    dns.update_zone(ZONE)
    return DnsLookup([dns.nameserver], budget_seconds=10)


@pytest.mark.parametrize(
    ("ip", "domain", "expected"),
    [
        ("192.0.2.100", "spf.example", SpfResult.PASS),  # ip4 network
        ("192.0.2.200", "spf.example", SpfResult.SOFTFAIL),  # outside the /25
        ("198.51.100.10", "spf.example", SpfResult.PASS),  # a:host/30 covers .8-.11
        ("198.51.100.200", "spf.example", SpfResult.PASS),  # mx
        ("2001:db8::1234", "spf.example", SpfResult.PASS),  # mx//64
        ("2001:db8:2::1", "spf.example", SpfResult.SOFTFAIL),  # include's -all is a no-match, not a fail
        ("2001:db8:1::1", "partner.example", SpfResult.PASS),
        ("192.0.2.1", "redirected.example", SpfResult.PASS),  # redirect= evaluates the other record
        ("192.0.2.1", "nospf.example", SpfResult.NONE),
    ],
)
def test_check_host(lookup: DnsLookup, ip: str, domain: str, expected: SpfResult) -> None:
    assert check_host(lookup, ip, domain)[0] is expected


def test_macros_are_reported_not_guessed(lookup: DnsLookup) -> None:
    result, notes = check_host(lookup, "192.0.2.1", "macro.example")
    assert result is SpfResult.FAIL
    assert notes == ["exists:%{i}.rbl.example uses SPF macros, which the doctor does not expand"]


def test_terms_round_trip_and_syntax_errors_are_permerrors() -> None:
    record = parse_spf("v=spf1 -ip4:10.0.0.0/8 ~a/24 mx:example.org/28//64 ?all exp=explain.example")
    assert [str(t) for t in record.terms] == [
        "-ip4:10.0.0.0/8",
        "~a/24",
        "mx:example.org/28//64",
        "?all",
        "exp=explain.example",
    ]
    with pytest.raises(SpfError, match="include needs a value"):
        parse_spf("v=spf1 include: -all")
    with pytest.raises(SpfError, match="bad CIDR"):
        parse_spf("v=spf1 a/33x -all")
