"""TLS policy per recipient domain and MTA-STS (RFC 8461), against real peers on loopback: a DNS server, SMTP sinks
with certificates from a test CA (or self-signed ones), and an HTTPS server serving mta-sts.<domain> policies."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from postroom.core.deliverability_settings import TlsLevel, parse_tls_policy
from postroom.core.delivery_results import Outcome, RecipientResult
from postroom.deliver.mta_sts import (
    DynamoPolicyCache,
    LayeredPolicyCache,
    MemoryPolicyCache,
    MtaStsError,
    MtaStsMode,
    MtaStsResolver,
    PolicyFetcher,
    parse_policy,
    parse_txt,
)
from postroom.deliver.mx import MxResolver
from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions
from postroom.deliver.tls_policy import MtaStsTlsPolicies, StaticTlsPolicies
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.https_server import HttpsServer, Response
from postroom.testing.smtp_peers import RecordingSink
from postroom.testing.tls_certs import TestAuthority
from tests.deliverability.conftest import HELO_NAME, SmtpStack, smtp_stack_for

SENDER = "orders@shop.example"
MESSAGE = (
    b"From: orders@shop.example\r\nTo: ann@example.org\r\nSubject: hi\r\nMessage-ID: <1@shop.example>\r\n\r\nhi\r\n"
)
POLICY_PATH = "/.well-known/mta-sts.txt"
DOMAINS = ("example.org", "bank.example", "city.gov.example", "testing.example")


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority()


@pytest.fixture(scope="module")
def https(authority: TestAuthority) -> Iterator[HttpsServer]:
    """mta-sts.<domain> for every test domain, with a certificate the test CA signed for those names."""
    with HttpsServer(authority.server_context(*(f"mta-sts.{domain}" for domain in DOMAINS))) as server:
        yield server


@pytest.fixture
def web(https: HttpsServer) -> HttpsServer:
    https.clear()
    return https


@pytest.fixture
def zone(dns_server: LoopbackDnsServer) -> LoopbackDnsServer:
    records: dict[str, dict[str, Any]] = {"mx.example.org": {"A": ["127.0.0.1"]}}
    for domain in DOMAINS:
        records[domain] = {"MX": [(10, "mx.example.org")]}
        records[f"mta-sts.{domain}"] = {"A": ["127.0.0.1"]}
    dns_server.set_zone(records)
    return dns_server


@pytest.fixture
def resolver(zone: LoopbackDnsServer) -> MxResolver:
    return MxResolver([zone.nameserver], timeout=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_770_000_000.0

    def __call__(self) -> float:
        return self.now


def publish_policy(
    dns: LoopbackDnsServer, web: HttpsServer, domain: str, body: str, policy_id: str = "20260203"
) -> None:
    dns.update_zone({f"_mta-sts.{domain}": {"TXT": ["v=STSv1; id=" + policy_id]}})
    web.serve(f"mta-sts.{domain}", POLICY_PATH, Response(body))


def enforce(*mx: str, max_age: int = 86400, mode: str = "enforce") -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {pattern}" for pattern in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


MakeSink = Callable[..., RecordingSink]


@pytest.fixture
def make_sink() -> Iterator[MakeSink]:
    sinks: list[RecordingSink] = []

    def make(**kwargs: Any) -> RecordingSink:
        sinks.append(RecordingSink(**kwargs).start())
        return sinks[-1]

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def trusted_sink(make_sink: MakeSink, authority: TestAuthority) -> RecordingSink:
    """An MX with a certificate for mx.example.org that the test CA signed."""
    return make_sink(starttls=True, tls_context=authority.server_context("mx.example.org"))


@pytest.fixture
def mta_sts(resolver: MxResolver, web: HttpsServer, authority: TestAuthority) -> MtaStsResolver:
    fetcher = PolicyFetcher(resolver.host_addresses, context=authority.client_context(), port=web.port, timeout=2.0)
    return MtaStsResolver(resolver.txt, fetcher, MemoryPolicyCache())


def agent_for(resolver: MxResolver, sink: RecordingSink, authority: TestAuthority, policies: Any) -> SmtpDeliveryAgent:
    options = SmtpOptions(helo_name=HELO_NAME, port=sink.port, timeout=2.0, ca_file=str(authority.ca_file))
    return SmtpDeliveryAgent(resolver, options, policies)


def send(agent: SmtpDeliveryAgent, domain: str = "example.org") -> RecipientResult:
    with agent:
        (result,) = agent.deliver(domain, SENDER, [f"ann@{domain}"], MESSAGE)
    return result


# -- static policy ---------------------------------------------------------------------------------------------------


def test_policy_entries_pick_the_most_specific_match() -> None:
    policies = StaticTlsPolicies(parse_tls_policy("bank.example=verify,*.gov.example=required,*.example=opportunistic"))
    assert policies.level_for("bank.example") is TlsLevel.VERIFY
    assert policies.level_for("city.gov.example") is TlsLevel.REQUIRED
    assert policies.level_for("a.b.gov.example") is TlsLevel.REQUIRED
    assert policies.level_for("gov.example") is TlsLevel.OPPORTUNISTIC  # *.gov.example is below it, not it
    assert policies.level_for("other.net") is TlsLevel.OPPORTUNISTIC  # the default
    with pytest.raises(ValueError, match="must be one of"):
        parse_tls_policy("bank.example=strict")


def test_opportunistic_tls_records_a_verified_certificate(
    resolver: MxResolver, trusted_sink: RecordingSink, authority: TestAuthority
) -> None:
    # GIVEN an MX whose certificate chains to a trusted CA and names the MX host
    agent = agent_for(resolver, trusted_sink, authority, StaticTlsPolicies())
    # WHEN delivering with the default, opportunistic policy
    result = send(agent)
    # THEN it went over TLS, verified, in one session
    assert result.outcome is Outcome.DELIVERED
    assert (result.tls, result.tls_verified, result.tls_policy) == (True, True, "opportunistic")
    assert result.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert trusted_sink.connections == 1


def test_opportunistic_tls_takes_an_untrusted_certificate_and_says_so(
    resolver: MxResolver, make_sink: MakeSink, authority: TestAuthority
) -> None:
    # GIVEN an MX with a self-signed certificate
    sink = make_sink(starttls=True)
    agent = agent_for(resolver, sink, authority, StaticTlsPolicies())
    # WHEN delivering opportunistically
    result = send(agent)
    # THEN the message went encrypted but unverified, after one failed check (a second connection)
    assert (result.outcome, result.tls, result.tls_verified) == (Outcome.DELIVERED, True, False)
    assert sink.messages[0].tls is True
    assert sink.connections == 2


def test_verify_refuses_an_untrusted_certificate(
    resolver: MxResolver, make_sink: MakeSink, authority: TestAuthority
) -> None:
    # GIVEN bank.example requires verified TLS, and its MX shows a self-signed certificate
    sink = make_sink(starttls=True)
    agent = agent_for(resolver, sink, authority, StaticTlsPolicies(parse_tls_policy("bank.example=verify")))
    # WHEN delivering
    result = send(agent, "bank.example")
    # THEN nothing was sent; the recipient is deferred with a policy status naming the MX
    assert sink.messages == []
    assert (result.outcome, result.enhanced_status, result.bounce_type) == (Outcome.DEFERRED, "4.7.5", "policy")
    assert "TLS certificate not trusted for mx.example.org" in result.reply
    assert result.tls_policy == "verify"


def test_verify_refuses_a_certificate_for_another_name(
    resolver: MxResolver, make_sink: MakeSink, authority: TestAuthority
) -> None:
    # GIVEN a certificate from the trusted CA, but for another host name
    sink = make_sink(starttls=True, tls_context=authority.server_context("mx.elsewhere.example"))
    agent = agent_for(resolver, sink, authority, StaticTlsPolicies(parse_tls_policy("bank.example=verify")))
    result = send(agent, "bank.example")
    assert (result.outcome, result.enhanced_status) == (Outcome.DEFERRED, "4.7.5")
    assert "Hostname mismatch" in result.reply or "doesn't match" in result.reply


def test_verify_delivers_over_a_verified_session(
    resolver: MxResolver, trusted_sink: RecordingSink, authority: TestAuthority
) -> None:
    agent = agent_for(resolver, trusted_sink, authority, StaticTlsPolicies(parse_tls_policy("bank.example=verify")))
    result = send(agent, "bank.example")
    assert (result.outcome, result.tls_verified, result.tls_policy) == (Outcome.DELIVERED, True, "verify")


def test_required_by_wildcard_refuses_plain_text(
    resolver: MxResolver, make_sink: MakeSink, authority: TestAuthority
) -> None:
    # GIVEN *.gov.example requires TLS and the MX offers no STARTTLS
    sink = make_sink()
    agent = agent_for(resolver, sink, authority, StaticTlsPolicies(parse_tls_policy("*.gov.example=required")))
    # WHEN delivering to city.gov.example, and to example.org (no entry)
    required = send(agent, "city.gov.example")
    other = send(agent_for(resolver, sink, authority, StaticTlsPolicies(parse_tls_policy("*.gov.example=required"))))
    # THEN the first waits for TLS (4.7.4), the second goes in plain text
    assert (required.outcome, required.enhanced_status, required.tls_policy) == (Outcome.DEFERRED, "4.7.4", "required")
    assert (other.outcome, other.tls, other.tls_verified) == (Outcome.DELIVERED, False, None)
    assert len(sink.messages) == 1


def test_a_session_opened_for_a_laxer_policy_is_not_reused_for_a_stricter_one(
    resolver: MxResolver, make_sink: MakeSink, authority: TestAuthority
) -> None:
    # GIVEN one MX without STARTTLS for example.org (opportunistic) and bank.example (verify)
    sink = make_sink()
    agent = agent_for(resolver, sink, authority, StaticTlsPolicies(parse_tls_policy("bank.example=verify")))
    with agent:
        (first,) = agent.deliver("example.org", SENDER, ["a@example.org"], MESSAGE)
        (second,) = agent.deliver("bank.example", SENDER, ["b@bank.example"], MESSAGE)
    # THEN the plain-text session of the first did not carry the second
    assert first.outcome is Outcome.DELIVERED
    assert (second.outcome, second.enhanced_status) == (Outcome.DEFERRED, "4.7.4")
    assert len(sink.messages) == 1


# -- MTA-STS: parsing ------------------------------------------------------------------------------------------------


def test_txt_records_name_one_policy_or_none() -> None:
    assert parse_txt([b"v=STSv1; id=20260203T1;"]) == "20260203T1"
    assert parse_txt([b"v=spf1 -all", b"v=STSv1; id=abc"]) == "abc"  # other records are discarded
    assert parse_txt([b"v=STSv1; id=a", b"v=STSv1; id=b"]) is None  # §3.1: more than one means none
    assert parse_txt([b"v=STSv1; id=not-alnum"]) is None
    assert parse_txt([b"v=STSv2; id=abc"]) is None
    assert parse_txt([]) is None


def test_a_policy_parses_and_matches_mx_names_as_rfc_8461_says() -> None:
    text = "version: STSv1\nmode: enforce\nmx: mx1.example.org\nmx: *.mail.example.net\nmax_age: 604800\nx-new: 1\n"
    policy = parse_policy("example.org", "1", text, 0.0)
    assert (policy.mode, policy.max_age) == (MtaStsMode.ENFORCE, 604800)
    assert policy.matches("MX1.example.org.")
    assert policy.matches("a.mail.example.net")
    assert not policy.matches("mail.example.net")  # the wildcard stands for one label, not none
    assert not policy.matches("a.b.mail.example.net")  # nor for two
    assert not policy.matches("mx2.example.org")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "version must be STSv1"),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "mode must be"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "needs at least one mx"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", "invalid mx pattern"),
    ],
)
def test_invalid_policies_are_refused(text: str, problem: str) -> None:
    with pytest.raises(MtaStsError, match=problem):
        parse_policy("example.org", "1", text, 0.0)


# -- MTA-STS: fetching -----------------------------------------------------------------------------------------------


def test_the_fetcher_refuses_redirects_other_media_types_and_untrusted_servers(
    resolver: MxResolver, zone: LoopbackDnsServer, web: HttpsServer, authority: TestAuthority
) -> None:
    fetcher = PolicyFetcher(resolver.host_addresses, context=authority.client_context(), port=web.port, timeout=2.0)
    # a policy served properly is fetched
    web.serve("mta-sts.example.org", POLICY_PATH, Response(enforce("mx.example.org")))
    assert "mode: enforce" in fetcher.fetch("example.org")
    # §3.3: a redirect is not followed
    web.serve("mta-sts.bank.example", POLICY_PATH, Response(status=302, headers={"Location": "https://x.example/"}))
    with pytest.raises(MtaStsError, match="HTTP 302"):
        fetcher.fetch("bank.example")
    # §3.3: only text/plain is a policy
    web.serve("mta-sts.testing.example", POLICY_PATH, Response("<html>", content_type="text/html"))
    with pytest.raises(MtaStsError, match="served text/html"):
        fetcher.fetch("testing.example")
    # a name without an address
    with pytest.raises(MtaStsError, match=r"mta-sts\.nowhere\.example"):
        fetcher.fetch("nowhere.example")
    # §3.3: the certificate must verify for mta-sts.<domain> (this client trusts another CA)
    stranger = PolicyFetcher(resolver.host_addresses, context=TestAuthority().client_context(), port=web.port)
    with pytest.raises(MtaStsError, match="certificate not trusted"):
        stranger.fetch("example.org")


# -- MTA-STS: enforcing ----------------------------------------------------------------------------------------------


def test_an_enforce_policy_delivers_over_verified_tls_to_a_matching_mx(
    zone: LoopbackDnsServer,
    web: HttpsServer,
    resolver: MxResolver,
    trusted_sink: RecordingSink,
    authority: TestAuthority,
    mta_sts: MtaStsResolver,
) -> None:
    # GIVEN example.org publishes an enforce policy naming its MX, whose certificate verifies
    publish_policy(zone, web, "example.org", enforce("mx.example.org"))
    agent = agent_for(resolver, trusted_sink, authority, MtaStsTlsPolicies(StaticTlsPolicies(), mta_sts))
    # WHEN delivering
    result = send(agent)
    # THEN it was delivered under the MTA-STS policy, verified, after fetching the policy once over HTTPS
    assert (result.outcome, result.tls_verified, result.tls_policy) == (Outcome.DELIVERED, True, "mta-sts")
    assert web.requests == [("mta-sts.example.org", POLICY_PATH)]


def test_an_enforce_policy_refuses_an_mx_it_does_not_name(
    zone: LoopbackDnsServer,
    web: HttpsServer,
    resolver: MxResolver,
    trusted_sink: RecordingSink,
    authority: TestAuthority,
    mta_sts: MtaStsResolver,
) -> None:
    # GIVEN an MX record an attacker could have forged: the policy names other hosts
    publish_policy(zone, web, "example.org", enforce("*.mail.example.org"))
    agent = agent_for(resolver, trusted_sink, authority, MtaStsTlsPolicies(StaticTlsPolicies(), mta_sts))
    # WHEN delivering
    result = send(agent)
    # THEN no connection was made, and the recipient is deferred (RFC 8461 §5: a temporary failure)
    assert trusted_sink.connections == 0
    assert (result.outcome, result.enhanced_status, result.bounce_type) == (Outcome.DEFERRED, "4.7.0", "policy")
    assert "matches its MTA-STS policy" in result.reply


@pytest.mark.parametrize("starttls", [True, False], ids=["self-signed", "no-starttls"])
def test_an_enforce_policy_refuses_an_mx_without_verified_tls(
    zone: LoopbackDnsServer,
    web: HttpsServer,
    resolver: MxResolver,
    make_sink: MakeSink,
    authority: TestAuthority,
    mta_sts: MtaStsResolver,
    starttls: bool,
) -> None:
    publish_policy(zone, web, "example.org", enforce("mx.example.org"))
    sink = make_sink(starttls=starttls)
    result = send(agent_for(resolver, sink, authority, MtaStsTlsPolicies(StaticTlsPolicies(), mta_sts)))
    assert sink.messages == []
    assert (result.outcome, result.enhanced_status) == (Outcome.DEFERRED, "4.7.5" if starttls else "4.7.4")


def test_a_testing_policy_delivers_and_reports_what_enforcing_would_refuse(
    zone: LoopbackDnsServer,
    web: HttpsServer,
    resolver: MxResolver,
    make_sink: MakeSink,
    authority: TestAuthority,
    mta_sts: MtaStsResolver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a testing policy that names other MX hosts, and an MX with a self-signed certificate
    publish_policy(zone, web, "testing.example", enforce("*.other.example", mode="testing"))
    sink = make_sink(starttls=True)
    # WHEN delivering
    with caplog.at_level(logging.WARNING):
        result = send(
            agent_for(resolver, sink, authority, MtaStsTlsPolicies(StaticTlsPolicies(), mta_sts)), "testing.example"
        )
    # THEN the message went (opportunistically), and the log says what an enforce policy would have refused
    assert (result.outcome, result.tls_verified) == (Outcome.DELIVERED, False)
    assert result.tls_policy == "opportunistic (mta-sts testing)"
    report = next(r for r in caplog.records if "MTA-STS testing policy" in r.getMessage())
    assert "does not match" in " ".join(report.problems)  # type: ignore[attr-defined]
    assert "did not verify" in " ".join(report.problems)  # type: ignore[attr-defined]


def test_no_policy_means_the_static_policy_alone(
    resolver: MxResolver, make_sink: MakeSink, authority: TestAuthority, mta_sts: MtaStsResolver, web: HttpsServer
) -> None:
    # GIVEN a domain without an _mta-sts record
    sink = make_sink()
    result = send(agent_for(resolver, sink, authority, MtaStsTlsPolicies(StaticTlsPolicies(), mta_sts)))
    # THEN nothing is fetched and the message goes as the static policy says
    assert (result.outcome, result.tls_policy) == (Outcome.DELIVERED, "opportunistic")
    assert web.requests == []


# -- MTA-STS: caching --------------------------------------------------------------------------------------------------


def test_the_cached_policy_holds_when_dns_and_https_are_stripped_until_it_expires(
    zone: LoopbackDnsServer, web: HttpsServer, resolver: MxResolver, authority: TestAuthority
) -> None:
    # GIVEN a fetched enforce policy with a max_age of one day
    clock = Clock()
    fetcher = PolicyFetcher(resolver.host_addresses, context=authority.client_context(), port=web.port, timeout=2.0)
    sts = MtaStsResolver(resolver.txt, fetcher, MemoryPolicyCache(), clock=clock)
    publish_policy(zone, web, "example.org", enforce("mx.example.org", max_age=86400))
    assert sts.policy("example.org") is not None
    # WHEN an attacker removes the TXT record and blocks the HTTPS server
    zone.update_zone({"_mta-sts.example.org": {}})
    web.clear()
    clock.now += 3600
    # THEN the cached policy still applies (RFC 8461 §5.1), without a new fetch
    cached = sts.policy("example.org")
    assert cached is not None
    assert cached.mode is MtaStsMode.ENFORCE
    assert web.requests == []
    # AND once max_age has passed it is gone
    clock.now += 86400
    assert sts.policy("example.org") is None


def test_a_new_policy_id_fetches_again_and_a_failed_fetch_keeps_the_old_policy(
    zone: LoopbackDnsServer, web: HttpsServer, resolver: MxResolver, authority: TestAuthority
) -> None:
    clock = Clock()
    fetcher = PolicyFetcher(resolver.host_addresses, context=authority.client_context(), port=web.port, timeout=2.0)
    sts = MtaStsResolver(resolver.txt, fetcher, MemoryPolicyCache(), clock=clock)
    publish_policy(zone, web, "example.org", enforce("mx.example.org"), policy_id="one")
    assert sts.policy("example.org").mx == ("mx.example.org",)  # type: ignore[union-attr]
    sts.policy("example.org")
    assert len(web.requests) == 1  # same id: the cache answers
    # WHEN the id changes
    publish_policy(zone, web, "example.org", enforce("mx2.example.org"), policy_id="two")
    assert sts.policy("example.org").mx == ("mx2.example.org",)  # type: ignore[union-attr]
    # AND when it changes again but the server now answers garbage, the last good policy stays
    publish_policy(zone, web, "example.org", "nonsense", policy_id="three")
    assert sts.policy("example.org").policy_id == "two"  # type: ignore[union-attr]
    requests = len(web.requests)
    sts.policy("example.org")
    assert len(web.requests) == requests  # and a failed fetch is not retried for every message


@pytest.fixture
def table_stack(monkeypatch: pytest.MonkeyPatch, dns_server: LoopbackDnsServer, trusted_sink: RecordingSink,
                web: HttpsServer, authority: TestAuthority) -> Iterator[SmtpStack]:  # fmt: skip
    monkeypatch.setenv("POSTROOM_TLS_CA_FILE", str(authority.ca_file))
    monkeypatch.setenv("POSTROOM_MTA_STS_PORT", str(web.port))
    yield from smtp_stack_for(monkeypatch, dns_server, trusted_sink, {"TlsPolicy": "*.gov.example=required"})


def test_the_worker_enforces_mta_sts_and_keeps_the_policy_in_the_table(
    table_stack: SmtpStack, web: HttpsServer, authority: TestAuthority
) -> None:
    # GIVEN example.org publishes an enforce policy, and its MX has a verifiable certificate
    table_stack.dns.update_zone({"mta-sts.example.org": {"A": ["127.0.0.1"]}})
    publish_policy(table_stack.dns, web, "example.org", enforce("mx.example.org"))
    # WHEN a message is sent through the API and the worker
    message_id = table_stack.send(to=["ann@example.org"])
    table_stack.run_worker()
    # THEN the recipient's record shows the policy and the verified TLS session
    (recipient,) = table_stack.status(message_id)["recipients"]
    assert recipient["status"] == "delivered"
    assert (recipient["tls"], recipient["tls_verified"], recipient["tls_policy"]) == (True, True, "mta-sts")
    assert recipient["tls_version"] in {"TLSv1.2", "TLSv1.3"}
    # AND the policy is in the table, where a new execution environment finds it (a cold start is no downgrade)
    table = table_stack.stack.resources["Table"]["Ref"]
    cache = DynamoPolicyCache(boto3.client("dynamodb"), table)
    stored = cache.get("example.org")
    assert stored is not None
    assert (stored.mode, stored.mx, stored.policy_id) == (MtaStsMode.ENFORCE, ("mx.example.org",), "20260203")
    item = boto3.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "MTASTS#example.org"}, "sk": {"S": "POLICY"}}
    )
    assert int(item["Item"]["expires_at"]["N"]) > int(stored.fetched_at)
    layered = LayeredPolicyCache(MemoryPolicyCache(), cache)
    assert layered.get("example.org") == stored


class CountingCache(MemoryPolicyCache):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, domain: str) -> Any:
        self.reads += 1
        return super().get(domain)


def test_the_table_is_asked_once_per_domain_while_it_holds_nothing() -> None:
    # GIVEN a table without a policy for example.org, behind the memory cache
    clock = Clock()
    table = CountingCache()
    layered = LayeredPolicyCache(MemoryPolicyCache(), table, absent_seconds=300, clock=clock)
    # WHEN many messages go to the domain within five minutes
    assert [layered.get("example.org") for _ in range(10)] == [None] * 10
    # THEN the table was read once; after that time it is asked again, and a policy put is seen at once
    assert table.reads == 1
    clock.now += 301
    layered.get("example.org")
    assert table.reads == 2
    policy = parse_policy("example.org", "1", enforce("mx.example.org"), clock.now)
    layered.put(policy)
    assert layered.get("example.org") == policy


def broken_tls_context(authority: TestAuthority) -> ssl.SSLContext:
    """A server that demands a client certificate, which no MTA sends: every STARTTLS handshake fails."""
    context = authority.server_context("mx.example.org")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(authority.ca_file))
    return context


def test_a_broken_tls_handshake_falls_back_to_plain_text_only_when_opportunistic(
    resolver: MxResolver, make_sink: MakeSink, authority: TestAuthority
) -> None:
    # GIVEN an MX whose STARTTLS handshake always fails
    sink = make_sink(starttls=True, tls_context=broken_tls_context(authority))
    agent = agent_for(resolver, sink, authority, StaticTlsPolicies(parse_tls_policy("bank.example=required")))
    # WHEN delivering opportunistically to example.org, and to bank.example, which requires TLS
    with agent:
        (plain,) = agent.deliver("example.org", SENDER, ["ann@example.org"], MESSAGE)
        (required,) = agent.deliver("bank.example", SENDER, ["ann@bank.example"], MESSAGE)
    # THEN the first went in plain text on a new connection, the second waits for TLS that works
    assert (plain.outcome, plain.tls, plain.tls_verified) == (Outcome.DELIVERED, False, None)
    assert [m.tls for m in sink.messages] == [False]
    assert (required.outcome, required.enhanced_status) == (Outcome.DEFERRED, "4.7.5")
    assert "TLS handshake failed" in required.reply
