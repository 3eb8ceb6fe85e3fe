"""Sender spoofing through ambiguous or foreign originator fields (issue 15, item 1), through SMTP submission: a real
SMTP conversation on loopback with the local stack behind it, and the delivered bytes read at the receiving MX.

The HTTP side of the same attacks is in tests/api/test_sender_spoofing.py.
"""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest

from postroom.local.stack import LocalStack
from postroom.protocols.submission.api_client import PostroomClient
from postroom.protocols.submission.smtp_listener import SubmissionController, SubmissionOptions, submission_server
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from tests.e2e.test_local_stack import call
from tests.submission.test_submission import wait_for

pytestmark = pytest.mark.e2e

BODY = b"To: ann@example.org\r\nSubject: {subject}\r\n\r\nHello.\r\n"

# (originator lines, the SMTP reply code, words of the reply): each is refused at the end of DATA.
ATTACKS = [
    (b"From: orders@shop.example <ceo@evil-corp.example>", 554, b"5.6.0 From is not a clean RFC 5322 address"),
    (b"From: orders@shop.example<ceo@evil-corp.example>", 554, b"5.6.0 From is not a clean RFC 5322 address"),
    (b"From: <orders@shop.example>ceo@evil-corp.example", 554, b"5.6.0 From is not a clean RFC 5322 address"),
    (b"From: orders@shop.example\r\nSender: ceo@evil-corp.example", 553, b"5.7.1 'evil-corp.example'"),
    (b"From: orders@shop.example\r\nResent-From: ceo@evil-corp.example", 553, b"5.7.1 'evil-corp.example'"),
    (b"From: orders@shop.example\r\nResent-Sender: ceo@evil-corp.example", 553, b"5.7.1 'evil-corp.example'"),
    (b"From: orders@shop.example, ceo@shop.example", 554, b"5.6.0 From must hold exactly one address"),
    (b"From: orders@shop.example\r\nReply-To: help@desk.example <x@evil.example>", 554, b"5.6.0 Reply-To is not"),
]


@pytest.fixture
def server(local: LocalStack) -> Iterator[SubmissionController]:
    # Loopback: AUTH without TLS is allowed there, and TLS is not what these tests are about.
    listener = submission_server(PostroomClient(local.api_url), options=SubmissionOptions())
    listener.start()
    yield listener
    listener.stop()


def test_spoofed_originators_are_refused_in_an_smtp_conversation(
    local: LocalStack, server: SubmissionController, peers: tuple[RecordingSink, LoopbackDnsServer]
) -> None:
    sink, _ = peers
    before = len(sink.messages)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.ehlo("crm.example")
        client.login("apikey", local.api_key)
        for number, (originators, code, words) in enumerate(ATTACKS):
            message = originators + b"\r\n" + BODY.replace(b"{subject}", f"spoof {number}".encode())
            # GIVEN a logged-in client with a configured envelope sender  WHEN the message's header spoofs
            # THEN the end of DATA is refused with a permanent code that says why ...
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("orders@shop.example", ["ann@example.org"], message)
            assert refused.value.smtp_code == code, (originators, refused.value)
            assert words in refused.value.smtp_error, (originators, refused.value)
        # ... and the session stays usable for a clean message
        assert client.sendmail("orders@shop.example", ["ann@example.org"], b"From: orders@shop.example\r\n" + BODY
                               .replace(b"{subject}", b"clean after spoofs")) == {}  # fmt: skip
    wait_for(sink, "clean after spoofs")
    assert not any(b"Subject: spoof " in received.content for received in sink.messages[before:])
    assert len(server.handler.queued) == 1


def originators_of(content: bytes) -> dict[str, list[str]]:
    """Every originator field of delivered bytes as a receiver reads it, after checking it parsed cleanly."""
    parsed = message_from_bytes(content, policy=policy.default)
    fields: dict[str, list[str]] = {}
    for name in ("From", "Sender", "Reply-To", "Resent-From", "Resent-Sender"):
        for header in parsed.get_all(name, []):
            assert not header.defects, (name, header.defects)
            fields.setdefault(name, []).extend(address.addr_spec for address in header.addresses)
    return fields


def test_delivered_originators_reparse_to_exactly_the_checked_addresses(
    local: LocalStack, server: SubmissionController, peers: tuple[RecordingSink, LoopbackDnsServer]
) -> None:
    sink, _ = peers
    originators = (
        b'From: "Shop, Orders" <orders@shop.example>\r\nSender: robot@shop.example\r\n'
        b"Reply-To: Help Desk <help@desk.example>, tickets@desk.example\r\n"
        b"Resent-From: ops@shop.example\r\nResent-Sender: robot@shop.example\r\n"
    )
    checked = {
        "From": ["orders@shop.example"],
        "Sender": ["robot@shop.example"],
        "Reply-To": ["help@desk.example", "tickets@desk.example"],
        "Resent-From": ["ops@shop.example"],
        "Resent-Sender": ["robot@shop.example"],
    }
    # GIVEN the same clean originator fields through SMTP submission and through the raw HTTP endpoint
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.login("apikey", local.api_key)
        client.sendmail("orders@shop.example", ["ann@example.org"], originators + BODY.replace(b"{subject}", b"smtp"))
    raw = originators + BODY.replace(b"{subject}", b"raw http")
    status, body = call(local, "POST", "/v1/messages/raw", {"raw": base64.b64encode(raw).decode()})
    assert status == 202, body
    # ... and a JSON message whose From line is over 78 characters (a display name with a comma, a long local part)
    long_local = "o" * 64
    status, body = call(local, "POST", "/v1/messages", {
        "from": {"name": "Shop, Inc", "email": f"{long_local}@shop.example"},
        "reply_to": ["Help Desk <help@desk.example>"],
        "to": ["ann@example.org"],
        "subject": "json",
        "text": "Hello.",
    })  # fmt: skip
    assert status == 202, body
    # WHEN they reach the receiving MX  THEN each re-parses, without a defect, to exactly the checked addresses
    assert originators_of(wait_for(sink, "smtp")) == checked
    assert originators_of(wait_for(sink, "raw http")) == checked
    assert originators_of(wait_for(sink, "json")) == {
        "From": [f"{long_local}@shop.example"],
        "Reply-To": ["help@desk.example"],
    }
