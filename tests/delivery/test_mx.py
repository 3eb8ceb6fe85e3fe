"""MX resolution against a real DNS server on loopback (RFC 5321 §5.1, RFC 7505)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.nameserver
import dns.resolver
import pytest

from postroom.deliver.delivery_errors import (
    DnsTemporaryError,
    NoMxAddressError,
    NoSuchDomainError,
    NullMxError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnroutableDomainError,
)
from postroom.deliver.mx import MxHost, MxResolver, parse_nameservers, to_a_label
from postroom.testing.dns_server import SANDBOX_MX_HOST, LoopbackDnsServer

# -- nameserver settings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1:5353", [("127.0.0.1", 5353)]),
        ("10.0.0.2", [("10.0.0.2", 53)]),
        ("[::1]:5300", [("::1", 5300)]),
        ("[::1]", [("::1", 53)]),
        ("::1", [("::1", 53)]),
        ("127.0.0.1:5353, [::1]:53 ,10.0.0.2", [("127.0.0.1", 5353), ("::1", 53), ("10.0.0.2", 53)]),
        ("", []),
    ],
)
def test_parse_nameservers_reads_addresses_with_optional_ports(spec: str, expected: list[tuple[str, int]]) -> None:
    assert parse_nameservers(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["dns.example", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "[::1", "[::1]53", "1.1.1.1,,"],
)
def test_parse_nameservers_rejects_garbage_with_the_culprit_named(spec: str) -> None:
    with pytest.raises(ValueError, match="bad nameserver"):
        parse_nameservers(spec)


def test_idn_domains_become_a_labels() -> None:
    assert to_a_label("Bücher.Example.") == "xn--bcher-kva.example"
    assert to_a_label("EXAMPLE.org") == "example.org"
    with pytest.raises(ValueError, match="not a domain name"):
        to_a_label("a..b")


# -- MX lookups ------------------------------------------------------------------------------------------------------


def test_mx_hosts_come_lowest_preference_first_with_their_addresses(
    dns_server: LoopbackDnsServer, resolver: MxResolver
) -> None:
    # GIVEN a domain with two MX hosts, listed in the zone with the less preferred one first
    dns_server.set_zone(
        {
            "example.org": {"MX": [(20, "mx2.example.org"), (10, "mx1.example.org")]},
            "mx1.example.org": {"A": ["127.0.0.1"]},
            "mx2.example.org": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
        }
    )

    # WHEN resolving it
    hosts = resolver.resolve("example.org")

    # THEN the lower preference comes first, and a host keeps both its IPv4 and IPv6 addresses
    assert hosts == [
        MxHost(10, "mx1.example.org", ("127.0.0.1",)),
        MxHost(20, "mx2.example.org", ("127.0.0.2", "::1")),
    ]


def test_mx_hosts_of_equal_preference_are_tried_in_random_order(
    dns_server: LoopbackDnsServer, resolver: MxResolver
) -> None:
    # GIVEN two MX hosts of equal preference and a less preferred backup
    dns_server.set_zone(
        {
            "example.org": {"MX": [(10, "a.example.org"), (10, "b.example.org"), (30, "backup.example.org")]},
            "a.example.org": {"A": ["127.0.0.1"]},
            "b.example.org": {"A": ["127.0.0.2"]},
            "backup.example.org": {"A": ["127.0.0.3"]},
        }
    )

    # WHEN resolving many times
    orders = {tuple(host.hostname for host in resolver.resolve("example.org")) for _ in range(40)}

    # THEN both orders of the equal pair appear (RFC 5321 §5.1 spreads the load), the backup always last
    assert orders == {
        ("a.example.org", "b.example.org", "backup.example.org"),
        ("b.example.org", "a.example.org", "backup.example.org"),
    }


def test_a_domain_without_mx_is_its_own_implicit_mx(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a domain with an A record and no MX record
    dns_server.set_zone({"nomx.example": {"A": ["127.0.0.1"]}})

    # WHEN resolving it
    hosts = resolver.resolve("nomx.example")

    # THEN the domain itself is the MX, with preference 0 (RFC 5321 §5.1)
    assert hosts == [MxHost(0, "nomx.example", ("127.0.0.1",))]


def test_an_ipv6_only_host_resolves_to_its_aaaa_address(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a domain whose MX host only has an AAAA record
    dns_server.set_zone({"v6.example": {"MX": [(10, "mx.v6.example")]}, "mx.v6.example": {"AAAA": ["::1"]}})

    # WHEN / THEN
    assert resolver.resolve("v6.example") == [MxHost(10, "mx.v6.example", ("::1",))]


def test_mx_hosts_without_any_address_are_skipped(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a preferred MX host that has no address record, and a working backup
    dns_server.set_zone(
        {
            "example.org": {"MX": [(10, "gone.example.org"), (20, "mx2.example.org")]},
            "mx2.example.org": {"A": ["127.0.0.2"]},
        }
    )

    # WHEN / THEN only the backup is left
    assert resolver.resolve("example.org") == [MxHost(20, "mx2.example.org", ("127.0.0.2",))]


def test_when_no_mx_host_has_an_address_the_failure_is_transient(
    dns_server: LoopbackDnsServer, resolver: MxResolver
) -> None:
    # GIVEN MX records pointing at names with no address
    dns_server.set_zone({"example.org": {"MX": [(10, "gone.example.org")]}})

    # WHEN / THEN resolving says so, as something to retry (a zone being edited looks like this)
    with pytest.raises(NoMxAddressError) as caught:
        resolver.resolve("example.org")
    assert isinstance(caught.value, TransientDeliveryError)
    assert caught.value.enhanced_status == "4.4.4"


def test_null_mx_is_a_permanent_failure(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a domain publishing a null MX (RFC 7505), and an A record that must not be used as an implicit MX
    dns_server.set_zone({"nullmx.example": {"MX": [(0, ".")], "A": ["127.0.0.1"]}})

    # WHEN / THEN
    with pytest.raises(NullMxError) as caught:
        resolver.resolve("nullmx.example")
    assert isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.enhanced_status == "5.1.10"
    assert str(caught.value).startswith("5.1.10 nullmx.example publishes a null MX")


def test_a_domain_that_does_not_exist_is_a_permanent_failure(
    dns_server: LoopbackDnsServer, resolver: MxResolver
) -> None:
    # GIVEN a zone that does not know the domain
    dns_server.set_zone({"example.org": {"A": ["127.0.0.1"]}})

    # WHEN / THEN NXDOMAIN means bounce, with 5.1.2
    with pytest.raises(NoSuchDomainError) as caught:
        resolver.resolve("typo.example")
    assert caught.value.enhanced_status == "5.1.2"


def test_a_domain_without_mx_or_address_is_unroutable(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a domain that exists (it has a TXT record) but has no MX and no A/AAAA
    dns_server.set_zone({"txtonly.example": {"TXT": ["v=spf1 -all"]}})

    # WHEN / THEN
    with pytest.raises(UnroutableDomainError) as caught:
        resolver.resolve("txtonly.example")
    assert caught.value.enhanced_status == "5.4.4"


def test_servfail_is_a_transient_failure(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a domain whose nameserver answers SERVFAIL
    dns_server.set_zone({"broken.example": {"SERVFAIL": True}})

    # WHEN / THEN
    with pytest.raises(DnsTemporaryError) as caught:
        resolver.resolve("broken.example")
    assert caught.value.enhanced_status == "4.4.3"


@pytest.fixture
def silent_nameserver() -> Iterator[tuple[str, int]]:
    """A UDP port that receives queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        yield silent.getsockname()


def test_a_nameserver_that_never_answers_is_a_transient_failure(silent_nameserver: tuple[str, int]) -> None:
    # GIVEN a resolver whose only nameserver says nothing
    resolver = MxResolver([silent_nameserver], timeout=0.3)

    # WHEN / THEN the lookup times out as a transient failure
    with pytest.raises(DnsTemporaryError, match="timed out"):
        resolver.resolve("example.org")


def test_idn_domains_are_looked_up_by_their_a_label(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a zone holding the A-label of bücher.example
    dns_server.set_zone(
        {"xn--bcher-kva.example": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}}
    )

    # WHEN resolving the U-label form
    hosts = resolver.resolve("Bücher.example")

    # THEN the A-label was asked for
    assert hosts == [MxHost(10, "mx.example.org", ("127.0.0.1",))]


def test_an_invalid_domain_name_is_a_permanent_failure(resolver: MxResolver) -> None:
    with pytest.raises(NoSuchDomainError, match="not a domain name"):
        resolver.resolve("exa..mple.org")


# -- the loopback DNS server itself ----------------------------------------------------------------------------------


def test_long_txt_records_are_split_into_255_octet_strings_and_served_over_tcp(dns_server: LoopbackDnsServer) -> None:
    # GIVEN a DKIM-sized TXT record, too big for a 512-octet UDP answer
    record = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.set_zone({"sel._domainkey.example.org": {"TXT": [record]}})
    client = dns.resolver.Resolver(configure=False)
    client.nameservers = [dns.nameserver.Do53Nameserver(*dns_server.nameserver)]

    # WHEN querying it (the UDP answer comes back truncated; dnspython retries over TCP)
    answer = client.resolve("sel._domainkey.example.org", "TXT")

    # THEN the record arrives whole, in character-strings of at most 255 octets
    (rdata,) = answer
    assert [len(part) for part in rdata.strings] == [255, 255, len(record) - 510]
    assert b"".join(rdata.strings).decode() == record


def test_names_between_the_zone_and_its_records_exist_without_records(dns_server: LoopbackDnsServer) -> None:
    # GIVEN a record two labels below the domain
    dns_server.set_zone({"sel._domainkey.example.org": {"TXT": ["v=DKIM1"]}})
    client = dns.resolver.Resolver(configure=False)
    client.nameservers = [dns.nameserver.Do53Nameserver(*dns_server.nameserver)]

    # WHEN / THEN the empty name in between answers "no records" rather than "no such name"
    with pytest.raises(dns.resolver.NoAnswer):
        client.resolve("_domainkey.example.org", "TXT")
    with pytest.raises(dns.resolver.NXDOMAIN):
        client.resolve("other.example.org", "TXT")


def test_zone_changes_are_seen_at_once(dns_server: LoopbackDnsServer, resolver: MxResolver) -> None:
    # GIVEN a resolved domain
    dns_server.set_zone({"example.org": {"MX": [(10, "mx1.example.org")]}, "mx1.example.org": {"A": ["127.0.0.1"]}})
    assert resolver.resolve("example.org")[0].hostname == "mx1.example.org"

    # WHEN its MX moves
    dns_server.update_zone({"example.org": {"MX": [(10, "mx2.example.org")]}, "mx2.example.org": {"A": ["127.0.0.2"]}})

    # THEN the same resolver sees the new MX (TTL 0: nothing cached)
    assert resolver.resolve("example.org") == [MxHost(10, "mx2.example.org", ("127.0.0.2",))]


def test_sandbox_mode_routes_every_domain_to_one_local_mx() -> None:
    # GIVEN the local stack's sandbox DNS, catching all mail for 127.0.0.1
    with LoopbackDnsServer(catch_all_mx="127.0.0.1") as sandbox:
        resolver = MxResolver([sandbox.nameserver], timeout=1.0)

        # WHEN resolving any domain
        hosts = resolver.resolve("customer.example.com")

    # THEN it has one MX: the sandbox host at the catch-all address
    assert hosts == [MxHost(10, SANDBOX_MX_HOST, ("127.0.0.1",))]


def test_bad_zone_entries_are_refused_when_set(dns_server: LoopbackDnsServer) -> None:
    with pytest.raises(ValueError, match="MX value is"):
        dns_server.set_zone({"example.org": {"MX": ["mx.example.org"]}})
    with pytest.raises(ValueError, match="bad record"):
        dns_server.set_zone({"example.org": {"A": ["not-an-address"]}})
