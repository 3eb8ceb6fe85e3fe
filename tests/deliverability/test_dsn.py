"""Asynchronous bounces: DSNs (RFC 3464) as real MTAs write them, parsed and applied to the Postroom message."""

from __future__ import annotations

import smtplib

import pytest

from postroom.core.bounce_types import BounceType
from postroom.receive.bounces.bounce_report import handle_bounce
from postroom.receive.bounces.dsn_parse import DsnParseError, parse_dsn
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import services
from tests.deliverability.conftest import SmtpStack, sample

ID = "msg_01jabcdefghjkmnpqrstvwxyz0"


# -- parsing ---------------------------------------------------------------------------------------------------------


def test_a_postfix_bounce_names_the_message_the_recipient_and_the_reason() -> None:
    # GIVEN Postfix's "Undelivered Mail Returned to Sender" with the original header only (text/rfc822-headers)
    report = parse_dsn(sample("postfix-failed.eml", ID))
    # THEN the original Message-ID, the recipient, the action, the status and the diagnostic come out
    assert report.original_message_id == "<01jabcdefghjkmnpqrstvwxyz0@shop.example>"
    assert report.reporting_mta == "mx.example.org"
    (recipient,) = report.recipients
    assert (recipient.address, recipient.action, recipient.status) == ("nobody@example.org", "failed", "5.1.1")
    assert recipient.diagnostic_code == (
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table"
    )
    assert (recipient.smtp_code, recipient.remote_mta, recipient.bounce_type) == (550, "store.example.org", "hard")


def test_an_exchange_report_with_several_recipients_and_the_whole_message() -> None:
    # GIVEN an Exchange NDR: multipart/alternative notification, two recipient blocks, the full message/rfc822
    report = parse_dsn(sample("exchange-quota.eml", ID))
    # THEN each recipient has its own status and class, and the folded Message-ID is found in the returned message
    assert report.original_message_id == "<01jabcdefghjkmnpqrstvwxyz0@shop.example>"
    assert [(r.address, r.status, r.bounce_type) for r in report.recipients] == [
        ("BOB@example.org", "5.2.2", BounceType.MAILBOX_FULL),
        ("carol@example.org", "5.7.1", BounceType.POLICY),
    ]


def test_an_internationalised_report_is_read_like_any_other() -> None:
    # GIVEN an RFC 6533 report (message/global-delivery-status, message/global-headers) with a commented status
    report = parse_dsn(sample("global-dsn.eml", ID))
    # THEN it reads the same
    (recipient,) = report.recipients
    assert (recipient.address, recipient.status, recipient.diagnostic_code) == (
        "dora@example.org",
        "5.1.1",
        "550 5.1.1 Benutzer unbekannt",
    )
    assert report.original_message_id == "<01jabcdefghjkmnpqrstvwxyz0@shop.example>"


def test_a_delay_warning_is_a_report_with_action_delayed() -> None:
    (recipient,) = parse_dsn(sample("postfix-delayed.eml", ID)).recipients
    assert (recipient.action, recipient.status, recipient.bounce_type) == ("delayed", "4.4.1", BounceType.SOFT)


def test_an_ordinary_reply_is_not_a_dsn() -> None:
    with pytest.raises(DsnParseError, match="not a delivery status notification"):
        parse_dsn(sample("not-a-dsn.eml", ID))


def test_a_report_without_recipient_blocks_is_refused() -> None:
    raw = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n--B--\r\n"
    )
    with pytest.raises(DsnParseError, match="names no recipient"):
        parse_dsn(raw)


# -- applying --------------------------------------------------------------------------------------------------------


def arrive_by_smtp(raw: bytes) -> bytes:
    """The DSN as Postroom's inbound MX would receive it: over SMTP, with the null reverse path (RFC 5321 §4.5.5)."""
    with RecordingSink() as inbound, smtplib.SMTP("127.0.0.1", inbound.port, timeout=5) as client:
        client.sendmail("", ["bounces@shop.example"], raw)
        (received,) = inbound.wait_for(1)
    assert received.mail_from == "<>"
    return received.content


def test_a_dsn_arriving_later_bounces_the_delivered_recipient(smtp_stack: SmtpStack) -> None:
    # GIVEN a message the MX accepted for both recipients
    message_id = smtp_stack.send(to=["nobody@example.org", "ann@example.org"])
    smtp_stack.run_worker()
    assert smtp_stack.status(message_id)["status"] == "delivered"
    (sent,) = smtp_stack.sink.messages

    # WHEN the MX's Postfix later returns a DSN for one of them, quoting the Message-ID it received
    message_id_header = next(line for line in sent.content.split(b"\r\n") if line.startswith(b"Message-ID: "))
    dsn = sample("postfix-failed.eml", message_id).replace(
        f"Message-ID: <{message_id.removeprefix('msg_')}@shop.example>".encode(), message_id_header
    )
    events = handle_bounce(arrive_by_smtp(dsn), services().messages)

    # THEN that recipient is bounced with the DSN's status and diagnostic, the other stays delivered
    assert [(e.recipient, e.applied, e.message_id) for e in events] == [("nobody@example.org", True, message_id)]
    record = smtp_stack.status(message_id)
    assert record["status"] == "partially_delivered"
    by_address = {r["address"]: r for r in record["recipients"]}
    bounced = by_address["nobody@example.org"]
    assert (bounced["status"], bounced["enhanced_status"], bounced["smtp_code"]) == ("bounced", "5.1.1", 550)
    assert (bounced["bounce_type"], bounced["mx_host"]) == ("hard", "store.example.org")
    assert "User unknown" in bounced["reply"]
    assert by_address["ann@example.org"]["status"] == "delivered"

    # AND the same DSN delivered twice changes nothing more
    (again,) = handle_bounce(arrive_by_smtp(dsn), services().messages)
    assert (again.applied, again.reason) == (False, "recipient is already bounced")


def test_the_last_delivered_recipient_bouncing_makes_the_message_bounced(smtp_stack: SmtpStack) -> None:
    # GIVEN a delivered message to two recipients at an Exchange server
    message_id = smtp_stack.send(to=["bob@example.org", "carol@example.org"])
    smtp_stack.run_worker()
    # WHEN its NDR reports both (one mailbox full, one refused by policy; the address in another case)
    events = handle_bounce(arrive_by_smtp(sample("exchange-quota.eml", message_id)), services().messages)
    # THEN both are bounced, each with its class, and so is the message
    assert [e.applied for e in events] == [True, True]
    record = smtp_stack.status(message_id)
    assert record["status"] == "bounced"
    assert [(r["status"], r["bounce_type"]) for r in record["recipients"]] == [
        ("bounced", "mailbox_full"),
        ("bounced", "policy"),
    ]


def test_reports_that_must_not_change_anything_do_not(smtp_stack: SmtpStack) -> None:
    # GIVEN a delivered message
    message_id = smtp_stack.send(to=["nobody@example.org"])
    smtp_stack.run_worker()
    store = services().messages

    # WHEN a delay warning arrives for it
    (delayed,) = handle_bounce(sample("postfix-delayed.eml", message_id).replace(b"ann@", b"nobody@"), store)
    # AND a failure report whose Message-ID has the right id part but a domain Postroom never wrote
    forged = sample("postfix-failed.eml", message_id).replace(b"@shop.example>", b"@attacker.example>")
    (spoofed,) = handle_bounce(forged, store)
    # AND reports for a message Postroom never sent, and for a Message-ID that is not Postroom's at all
    (unknown,) = handle_bounce(sample("postfix-failed.eml", ID), store)
    (foreign,) = handle_bounce(sample("postfix-failed.eml", "not-a-ulid"), store)

    # THEN none is applied, each says why, and the recipient stays delivered
    assert (delayed.applied, delayed.reason) == (False, "action delayed is informational")
    assert not spoofed.applied
    assert "does not match" in spoofed.reason
    assert (unknown.applied, unknown.reason) == (False, "no such message")
    assert (foreign.applied, foreign.message_id) == (False, None)
    assert smtp_stack.status(message_id)["recipients"][0]["status"] == "delivered"
