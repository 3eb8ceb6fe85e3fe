"""Direct SMTP delivery against real peers on loopback: a DNS server and aiosmtpd sinks, no mocks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from postroom.core.delivery_results import Outcome
from postroom.deliver.mx import MxResolver
from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import Action, RecordingSink, Stage

SENDER = "bounces@shop.example"
MESSAGE = (
    b"From: Shop <orders@shop.example>\r\n"
    b"To: buyer@example.org\r\n"
    b"Subject: Your order\r\n"
    b"Message-ID: <order-1@shop.example>\r\n"
    b"\r\n"
    b"Thanks for your order.\r\n"
    b".A line that starts with a dot, so dot-stuffing has work to do.\r\n"
    b"..And one with two.\r\n"
)

MakeSink = Callable[..., RecordingSink]
MakeAgent = Callable[..., SmtpDeliveryAgent]


def route(dns_server: LoopbackDnsServer, domain: str, *mx: tuple[int, str, str]) -> None:
    """Publish MX records for ``domain``: (preference, host name, address) each."""
    zone: dict[str, dict[str, object]] = {domain: {"MX": [(preference, host) for preference, host, _ in mx]}}
    for _, host, address in mx:
        zone[host] = {"AAAA" if ":" in address else "A": [address]}
    dns_server.update_zone(zone)


# -- where the message goes ------------------------------------------------------------------------------------------


def test_a_message_is_delivered_to_the_mx_byte_for_byte(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN example.org's MX is the sink
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering one message to one recipient
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)

    # THEN the sink took it, and the result quotes the sink's final reply
    assert result.outcome is Outcome.DELIVERED
    assert (result.smtp_code, result.enhanced_status) == (250, "2.0.0")
    assert result.reply == "250 2.0.0 OK: queued as 1"
    assert (result.mx_host, result.tls, result.tls_version) == ("mx.example.org", False, None)
    # AND what arrived is exactly what was sent (smtplib stuffed the dots, aiosmtpd removed them)
    (received,) = sink.messages
    assert received.content == MESSAGE
    assert (received.mail_from, received.rcpt_tos) == (SENDER, ("buyer@example.org",))
    # AND the sender announced the size, since the sink advertises SIZE (RFC 1870)
    assert received.mail_options == (f"SIZE={len(MESSAGE)}",)


def test_the_most_preferred_mx_gets_the_message(
    dns_server: LoopbackDnsServer,
    make_sink: MakeSink,
    sink: RecordingSink,
    agent: SmtpDeliveryAgent,
    second_loopback: str,
) -> None:
    # GIVEN two working MX hosts, the sink on 127.0.0.1 being the less preferred one
    backup = sink
    primary = make_sink(host=second_loopback, port=sink.port)
    route(dns_server, "example.org", (20, "mx2.example.org", "127.0.0.1"), (10, "mx1.example.org", second_loopback))

    # WHEN delivering
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)

    # THEN the preference 10 host has it, the backup nothing
    assert (result.outcome, result.mx_host) == (Outcome.DELIVERED, "mx1.example.org")
    assert len(primary.messages) == 1
    assert backup.messages == []


def test_the_next_mx_is_tried_when_the_first_refuses_connections(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent, second_loopback: str
) -> None:
    # GIVEN the preferred MX has nothing listening, the backup is the sink
    route(dns_server, "example.org", (10, "mx1.example.org", second_loopback), (20, "mx2.example.org", "127.0.0.1"))

    # WHEN delivering
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)

    # THEN the backup took it
    assert (result.outcome, result.mx_host) == (Outcome.DELIVERED, "mx2.example.org")
    assert len(sink.messages) == 1


def test_the_next_mx_is_tried_when_the_first_greets_with_421(
    dns_server: LoopbackDnsServer,
    make_sink: MakeSink,
    sink: RecordingSink,
    agent: SmtpDeliveryAgent,
    second_loopback: str,
) -> None:
    # GIVEN the preferred MX turns sessions away in its greeting (RFC 5321 §3.1)
    busy = sink
    busy.script(Stage.GREETING, "421 4.3.2 Too busy, try another MX")
    backup = make_sink(host=second_loopback, port=sink.port)
    route(dns_server, "example.org", (10, "mx1.example.org", "127.0.0.1"), (20, "mx2.example.org", second_loopback))

    # WHEN delivering
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)

    # THEN the backup took it
    assert (result.outcome, result.mx_host) == (Outcome.DELIVERED, "mx2.example.org")
    assert len(backup.messages) == 1
    assert busy.messages == []


def test_a_domain_without_mx_is_delivered_to_its_address(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN a domain with only an A record (RFC 5321 §5.1 implicit MX)
    dns_server.update_zone({"nomx.example": {"A": ["127.0.0.1"]}})

    # WHEN / THEN
    (result,) = agent.deliver("nomx.example", SENDER, ["someone@nomx.example"], MESSAGE)
    assert (result.outcome, result.mx_host) == (Outcome.DELIVERED, "nomx.example")
    assert len(sink.messages) == 1


def test_an_ipv6_only_mx_is_reached_over_ipv6(
    dns_server: LoopbackDnsServer,
    make_sink: MakeSink,
    sink: RecordingSink,
    agent: SmtpDeliveryAgent,
    ipv6_loopback: str,
) -> None:
    # GIVEN an MX host with only an AAAA record, and a sink listening on ::1
    v6_sink = make_sink(host=ipv6_loopback, port=sink.port)
    route(dns_server, "v6.example", (10, "mx.v6.example", ipv6_loopback))

    # WHEN / THEN
    (result,) = agent.deliver("v6.example", SENDER, ["someone@v6.example"], MESSAGE)
    assert result.outcome is Outcome.DELIVERED
    (received,) = v6_sink.messages
    assert received.peer[0] == "::1"


def test_an_idn_recipient_domain_is_sent_as_its_a_label(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an internationalised domain (its zone entry is the A-label)
    route(dns_server, "xn--bcher-kva.example", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering to an ASCII local part at the U-label
    (result,) = agent.deliver("bücher.example", SENDER, ["info@bücher.example"], MESSAGE)

    # THEN the RCPT carried the A-label, so no SMTPUTF8 was needed; the result keeps the address as given
    assert (result.outcome, result.recipient) == (Outcome.DELIVERED, "info@bücher.example")
    (received,) = sink.messages
    assert received.rcpt_tos == ("info@xn--bcher-kva.example",)
    assert "SMTPUTF8" not in received.mail_options


def test_a_non_ascii_local_part_is_sent_with_smtputf8(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an MX that advertises SMTPUTF8 (RFC 6531)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering to a non-ASCII mailbox
    (result,) = agent.deliver("example.org", SENDER, ["käufer@example.org"], MESSAGE)

    # THEN MAIL FROM carried SMTPUTF8 and the address went through as UTF-8
    assert result.outcome is Outcome.DELIVERED
    (received,) = sink.messages
    assert "SMTPUTF8" in received.mail_options
    assert received.rcpt_tos == ("käufer@example.org",)


def test_a_non_ascii_local_part_bounces_at_a_server_without_smtputf8(
    dns_server: LoopbackDnsServer, make_sink: MakeSink, make_agent: MakeAgent
) -> None:
    # GIVEN an MX without SMTPUTF8
    ascii_sink = make_sink(smtputf8=False)
    agent = make_agent(port=ascii_sink.port)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN the address cannot be expressed to it: a permanent failure, nothing sent
    (result,) = agent.deliver("example.org", SENDER, ["käufer@example.org"], MESSAGE)
    assert (result.outcome, result.enhanced_status) == (Outcome.BOUNCED, "5.6.7")
    assert ascii_sink.messages == []


# -- DNS answers that decide without connecting ----------------------------------------------------------------------


def test_a_null_mx_bounces_without_connecting(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN a domain that publishes a null MX but whose A record points at the sink
    dns_server.update_zone({"nullmx.example": {"MX": [(0, ".")], "A": ["127.0.0.1"]}})

    # WHEN delivering to two of its addresses
    results = agent.deliver("nullmx.example", SENDER, ["a@nullmx.example", "b@nullmx.example"], MESSAGE)

    # THEN both bounce with 5.1.10 (RFC 7505), and nobody connected to the sink
    assert [r.outcome for r in results] == [Outcome.BOUNCED, Outcome.BOUNCED]
    assert {r.enhanced_status for r in results} == {"5.1.10"}
    assert results[0].reply.startswith("5.1.10 nullmx.example publishes a null MX")
    assert sink.connections == 0


def test_a_domain_that_does_not_exist_bounces(dns_server: LoopbackDnsServer, agent: SmtpDeliveryAgent) -> None:
    # GIVEN an empty zone: every name is NXDOMAIN
    # WHEN / THEN
    (result,) = agent.deliver("typo.example", SENDER, ["someone@typo.example"], MESSAGE)
    assert (result.outcome, result.enhanced_status) == (Outcome.BOUNCED, "5.1.2")


def test_a_servfail_defers(dns_server: LoopbackDnsServer, agent: SmtpDeliveryAgent) -> None:
    # GIVEN a domain whose DNS is broken for now
    dns_server.update_zone({"broken.example": {"SERVFAIL": True}})

    # WHEN / THEN
    (result,) = agent.deliver("broken.example", SENDER, ["someone@broken.example"], MESSAGE)
    assert (result.outcome, result.enhanced_status) == (Outcome.DEFERRED, "4.4.3")
    assert "SERVFAIL" in result.reply


# -- TLS -------------------------------------------------------------------------------------------------------------


def test_starttls_is_used_when_offered(
    dns_server: LoopbackDnsServer, make_sink: MakeSink, make_agent: MakeAgent
) -> None:
    # GIVEN an MX that offers STARTTLS with a self-signed certificate
    tls_sink = make_sink(starttls=True)
    agent = make_agent(port=tls_sink.port)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering with default (opportunistic) options
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)

    # THEN the session was encrypted, and the message arrived intact
    assert result.outcome is Outcome.DELIVERED
    assert result.tls is True
    assert result.tls_version in {"TLSv1.2", "TLSv1.3"}
    (received,) = tls_sink.messages
    assert received.tls is True
    assert received.content == MESSAGE


def test_required_tls_defers_when_the_server_does_not_offer_it(
    dns_server: LoopbackDnsServer, sink: RecordingSink, make_agent: MakeAgent
) -> None:
    # GIVEN an MX without STARTTLS, and an agent that requires TLS
    agent = make_agent(require_tls=True)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN nothing is sent in the clear: the recipient is deferred with 4.7.4
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert (result.outcome, result.enhanced_status) == (Outcome.DEFERRED, "4.7.4")
    assert "STARTTLS" in result.reply
    assert sink.messages == []


def test_required_tls_is_satisfied_by_starttls(
    dns_server: LoopbackDnsServer, make_sink: MakeSink, make_agent: MakeAgent
) -> None:
    # GIVEN an MX that insists on STARTTLS itself, and an agent that requires TLS
    tls_sink = make_sink(require_starttls=True)
    agent = make_agent(port=tls_sink.port, require_tls=True)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert (result.outcome, result.tls) == (Outcome.DELIVERED, True)
    assert tls_sink.messages[0].tls is True


def test_certificate_verification_defers_on_an_untrusted_certificate(
    dns_server: LoopbackDnsServer, make_sink: MakeSink, make_agent: MakeAgent
) -> None:
    # GIVEN an MX with a self-signed certificate, and an agent that verifies certificates
    tls_sink = make_sink(starttls=True)
    agent = make_agent(port=tls_sink.port, tls_verify=True)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert (result.outcome, result.enhanced_status) == (Outcome.DEFERRED, "4.7.5")
    assert "certificate" in result.reply
    assert tls_sink.messages == []


# -- what the server says --------------------------------------------------------------------------------------------


def test_each_recipient_gets_its_own_rcpt_answer(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an MX that knows one of two recipients
    sink.script(Stage.RCPT, "550 5.1.1 <bad@example.org>: no such user", match="bad@")
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering to both
    bad, good = agent.deliver("example.org", SENDER, ["bad@example.org", "good@example.org"], MESSAGE)

    # THEN the unknown one bounces with the server's words, the other is delivered
    assert bad.outcome is Outcome.BOUNCED
    assert (bad.smtp_code, bad.enhanced_status, bad.mx_host) == (550, "5.1.1", "mx.example.org")
    assert bad.reply == "550 5.1.1 <bad@example.org>: no such user"
    assert (good.outcome, good.smtp_code) == (Outcome.DELIVERED, 250)
    # AND the message went to the accepted recipient only
    assert sink.messages[0].rcpt_tos == ("good@example.org",)


def test_a_temporary_rcpt_failure_defers_that_recipient(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN a full mailbox
    sink.script(Stage.RCPT, "452 4.2.2 Mailbox full", match="full@")
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN
    full, fine = agent.deliver("example.org", SENDER, ["full@example.org", "fine@example.org"], MESSAGE)
    assert (full.outcome, full.enhanced_status) == (Outcome.DEFERRED, "4.2.2")
    assert fine.outcome is Outcome.DELIVERED


def test_a_451_at_data_defers_and_the_retry_succeeds(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an MX that answers the first end of data with 451
    sink.script(Stage.DATA, "451 4.3.0 Try again later", times=1)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering twice
    first = agent.deliver("example.org", SENDER, ["a@example.org", "b@example.org"], MESSAGE)
    second = agent.deliver("example.org", SENDER, ["a@example.org", "b@example.org"], MESSAGE)

    # THEN the first attempt is deferred for every accepted recipient, the second delivered
    assert [(r.outcome, r.smtp_code, r.enhanced_status) for r in first] == [(Outcome.DEFERRED, 451, "4.3.0")] * 2
    assert [r.outcome for r in second] == [Outcome.DELIVERED] * 2
    assert len(sink.messages) == 1


def test_a_5xx_at_data_bounces(dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent) -> None:
    # GIVEN an MX that rejects the content
    sink.script(Stage.DATA, "554 5.7.1 Message rejected as spam")
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert (result.outcome, result.smtp_code, result.enhanced_status) == (Outcome.BOUNCED, 554, "5.7.1")
    assert result.reply == "554 5.7.1 Message rejected as spam"


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [("550 5.7.1 Sender rejected", Outcome.BOUNCED), ("451 4.7.1 Greylisted, come back later", Outcome.DEFERRED)],
)
def test_a_refused_mail_from_applies_to_every_recipient(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent, reply: str, outcome: Outcome
) -> None:
    # GIVEN an MX that refuses the sender
    sink.script(Stage.MAIL, reply)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN
    results = agent.deliver("example.org", SENDER, ["a@example.org", "b@example.org"], MESSAGE)
    assert [(r.outcome, r.reply) for r in results] == [(outcome, reply)] * 2
    assert sink.messages == []


def test_a_message_over_the_advertised_size_bounces(
    dns_server: LoopbackDnsServer, make_sink: MakeSink, make_agent: MakeAgent
) -> None:
    # GIVEN an MX that advertises a size limit smaller than the message
    small_sink = make_sink(data_size_limit=100)
    agent = make_agent(port=small_sink.port)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN the server refuses at MAIL FROM thanks to SIZE=, and that is permanent (RFC 1870 §6.1)
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert (result.outcome, result.smtp_code) == (Outcome.BOUNCED, 552)
    assert small_sink.messages == []


def test_a_server_that_does_not_know_ehlo_gets_helo(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an old MX that rejects EHLO
    sink.script(Stage.EHLO, "502 5.5.2 Error: command not recognized")
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN the agent falls back to HELO (RFC 5321 §3.2) and sends no ESMTP parameters
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert result.outcome is Outcome.DELIVERED
    assert sink.messages[0].mail_options == ()


# -- broken connections ----------------------------------------------------------------------------------------------


def test_a_dead_host_defers_naming_what_was_tried(
    dns_server: LoopbackDnsServer, make_agent: MakeAgent, closed_port: int
) -> None:
    # GIVEN an MX whose port refuses connections
    agent = make_agent(port=closed_port)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert (result.outcome, result.enhanced_status, result.smtp_code) == (Outcome.DEFERRED, "4.4.1", None)
    assert result.reply.startswith(f"4.4.1 connection to mx.example.org (127.0.0.1:{closed_port}) failed: ")
    assert "refused" in result.reply


def test_a_refusing_greeting_defers_quoting_the_server(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN the only MX refuses sessions in its greeting (RFC 5321 §3.1)
    sink.script(Stage.GREETING, "554 5.7.1 No SMTP service here")
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN the recipient is deferred, and the reply says who refused and how
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert result.outcome is Outcome.DEFERRED
    assert result.reply == (
        f"4.4.1 connection to mx.example.org (127.0.0.1:{sink.port}) failed: "
        "greeting was 554 5.7.1 No SMTP service here"
    )


def test_a_stalled_greeting_times_out_and_defers(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an MX that accepts the connection and never says hello
    sink.script(Stage.GREETING, Action.STALL)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering with a 1 s timeout
    started = time.monotonic()
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)

    # THEN the agent gives up after about the timeout
    assert time.monotonic() - started < 3
    assert result.outcome is Outcome.DEFERRED
    assert "timed out" in result.reply
    assert "mx.example.org (127.0.0.1:" in result.reply


def test_a_server_stalling_after_the_data_defers(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an MX that takes the message and never answers the end of data
    sink.script(Stage.DATA, Action.STALL)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN without a final 2xx, the message is not delivered (RFC 5321 §6.1)
    (result,) = agent.deliver("example.org", SENDER, ["buyer@example.org"], MESSAGE)
    assert (result.outcome, result.enhanced_status) == (Outcome.DEFERRED, "4.4.2")
    assert "lost at DATA" in result.reply


def test_a_connection_dropped_mid_data_defers(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an MX that hangs up after receiving the message, before replying
    sink.script(Stage.DATA, Action.DROP, times=1)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN
    results = agent.deliver("example.org", SENDER, ["a@example.org", "b@example.org"], MESSAGE)
    assert [(r.outcome, r.enhanced_status) for r in results] == [(Outcome.DEFERRED, "4.4.2")] * 2
    assert sink.messages == []
    # AND the agent recovers with a new connection for the next message
    (retry,) = agent.deliver("example.org", SENDER, ["a@example.org"], MESSAGE)
    assert retry.outcome is Outcome.DELIVERED
    assert sink.connections == 2


def test_a_421_at_rcpt_defers_every_recipient(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN an MX that shuts down in the middle of the recipients
    sink.script(Stage.RCPT, "421 4.3.2 Shutting down", match="second@")
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN / THEN the recipient accepted before the 421 is not delivered either: there was no DATA
    results = agent.deliver("example.org", SENDER, ["first@example.org", "second@example.org"], MESSAGE)
    assert [(r.outcome, r.smtp_code) for r in results] == [(Outcome.DEFERRED, 421)] * 2
    assert sink.messages == []


# -- connection reuse ------------------------------------------------------------------------------------------------


def test_messages_to_domains_sharing_an_mx_share_one_connection(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN two domains hosted on the same MX
    route(dns_server, "one.example", (10, "mx.hosting.example", "127.0.0.1"))
    route(dns_server, "two.example", (5, "mx.hosting.example", "127.0.0.1"))

    # WHEN delivering a message to each
    (first,) = agent.deliver("one.example", SENDER, ["a@one.example"], MESSAGE)
    (second,) = agent.deliver("two.example", SENDER, ["b@two.example"], MESSAGE)

    # THEN both arrived over the same SMTP session
    assert (first.outcome, second.outcome) == (Outcome.DELIVERED, Outcome.DELIVERED)
    assert sink.connections == 1
    assert [m.connection for m in sink.messages] == [1, 1]


def test_a_cached_connection_the_server_dropped_is_reopened(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN a delivered message, after which the server closed the idle session
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))
    agent.deliver("example.org", SENDER, ["a@example.org"], MESSAGE)
    sink.drop_connections()

    # WHEN delivering the next message
    (result,) = agent.deliver("example.org", SENDER, ["b@example.org"], MESSAGE)

    # THEN the agent noticed at MAIL FROM and delivered over a new session
    assert result.outcome is Outcome.DELIVERED
    assert sink.connections == 2
    assert [m.connection for m in sink.messages] == [1, 2]


def test_a_cached_connection_answered_with_421_is_reopened(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN a delivered message, and a server that will time the idle session out with a 421 at the next command
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))
    agent.deliver("example.org", SENDER, ["a@example.org"], MESSAGE)
    sink.script(Stage.MAIL, "421 4.4.2 Idle timeout exceeded", times=1)

    # WHEN / THEN
    (result,) = agent.deliver("example.org", SENDER, ["b@example.org"], MESSAGE)
    assert result.outcome is Outcome.DELIVERED
    assert sink.connections == 2


def test_a_session_carries_at_most_the_configured_number_of_transactions(
    dns_server: LoopbackDnsServer, sink: RecordingSink, make_agent: MakeAgent
) -> None:
    # GIVEN an agent that ends sessions after two messages
    agent = make_agent(max_transactions_per_connection=2)
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))

    # WHEN delivering three messages
    for n in range(3):
        agent.deliver("example.org", SENDER, [f"r{n}@example.org"], MESSAGE)

    # THEN the third needed a new session
    assert [m.connection for m in sink.messages] == [1, 1, 2]


def test_a_session_survives_a_transaction_without_accepted_recipients(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN a message whose only recipient is refused
    sink.script(Stage.RCPT, "550 5.1.1 no such user", match="gone@")
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))
    (refused,) = agent.deliver("example.org", SENDER, ["gone@example.org"], MESSAGE)

    # WHEN the next message follows
    (result,) = agent.deliver("example.org", SENDER, ["here@example.org"], MESSAGE)

    # THEN the aborted transaction was reset (RSET) and the same session carried the next one
    assert (refused.outcome, result.outcome) == (Outcome.BOUNCED, Outcome.DELIVERED)
    assert sink.connections == 1


def test_close_ends_the_cached_sessions(
    dns_server: LoopbackDnsServer, sink: RecordingSink, agent: SmtpDeliveryAgent
) -> None:
    # GIVEN a cached session
    route(dns_server, "example.org", (10, "mx.example.org", "127.0.0.1"))
    agent.deliver("example.org", SENDER, ["a@example.org"], MESSAGE)

    # WHEN the agent is closed, then used again
    agent.close()
    agent.deliver("example.org", SENDER, ["b@example.org"], MESSAGE)

    # THEN the second message needed a new session
    assert sink.connections == 2


def test_no_recipients_means_no_work(sink: RecordingSink, agent: SmtpDeliveryAgent) -> None:
    assert agent.deliver("example.org", SENDER, [], MESSAGE) == []
    assert sink.connections == 0


# -- the local stack's sandbox ---------------------------------------------------------------------------------------


def test_the_sandbox_captures_mail_for_any_domain_as_numbered_eml_files(make_sink: MakeSink, tmp_path: Path) -> None:
    # GIVEN the sandbox pair: a catch-all DNS pointing every MX at a sink that writes an outbox directory
    outbox = tmp_path / "outbox"
    sandbox_sink = make_sink(outbox=outbox)
    with LoopbackDnsServer(catch_all_mx="127.0.0.1") as sandbox_dns:
        resolver = MxResolver([sandbox_dns.nameserver], timeout=1.0)
        with SmtpDeliveryAgent(resolver, SmtpOptions(helo_name="relay.postroom.test", port=sandbox_sink.port)) as agent:
            # WHEN mail goes to two unrelated domains
            agent.deliver("customer.example.com", SENDER, ["a@customer.example.com"], MESSAGE)
            agent.deliver("other.example.net", SENDER, ["b@other.example.net"], MESSAGE + b"Second.\r\n")

    # THEN both landed in the outbox, in order, as they were sent
    assert sorted(path.name for path in outbox.iterdir()) == ["1.eml", "2.eml"]
    assert (outbox / "1.eml").read_bytes() == MESSAGE
    assert (outbox / "2.eml").read_bytes() == MESSAGE + b"Second.\r\n"
