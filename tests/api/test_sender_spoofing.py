"""Sender spoofing through ambiguous or foreign originator fields (issue 15, item 1), through the HTTP API.

``From: orders@shop.example <ceo@evil-corp.example>`` used to be accepted on ``POST /v1/messages/raw``: Python's parser
kept the configured address and dropped the rest as a defect, the header left as written, and mail clients showed
the foreign address under the operator's reputation. Sender/Resent-From/Resent-Sender on a foreign domain were
accepted outright. The SMTP submission side of the same attacks is in tests/submission/test_sender_spoofing.py.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from postroom.accept.intake import check_sender
from postroom.accept.mime_build import build_message, render
from postroom.accept.models import SendRequest
from postroom.accept.originators import check_originators, parse_header_block
from postroom.core.settings import Settings
from tests.api.test_raw_send import stored_mime
from tests.conftest import SENDING_DOMAINS, Stack

BODY = b"To: ann@example.org\r\nSubject: spoof attempt\r\n\r\nHello.\r\n"
SENDING = Settings(table="t", bucket="b", queue_url="q", dlq_url="d", sending_domains=SENDING_DOMAINS)


def send_raw(stack: Stack, header: bytes) -> tuple[int, dict]:
    raw = header + b"\r\n" + BODY
    return stack.request("POST", "/v1/messages/raw", {"raw": base64.b64encode(raw).decode()})


# The three forms of the report: the configured address and a foreign one in one From field.
AMBIGUOUS_FROM = [
    b"From: orders@shop.example <ceo@evil-corp.example>",
    b"From: orders@shop.example<ceo@evil-corp.example>",
    b"From: <orders@shop.example>ceo@evil-corp.example",
]


@pytest.mark.parametrize("header", AMBIGUOUS_FROM)
def test_ambiguous_from_is_refused_on_the_raw_endpoint(stack: Stack, header: bytes) -> None:
    # GIVEN a From that Python reads as orders@shop.example but that carries a foreign address too
    # WHEN it is submitted  THEN 422 naming the field, and nothing is queued
    status, body = send_raw(stack, header)
    assert status == 422, body
    assert body["error"]["code"] == "ambiguous_originator"
    assert body["error"]["field"] == "From"
    assert "invalid address in address-list" in body["error"]["message"]
    assert stack.queue_messages() == []


@pytest.mark.parametrize("field", ["Sender", "Resent-From", "Resent-Sender"])
def test_foreign_sender_and_resent_fields_are_refused(stack: Stack, field: str) -> None:
    # GIVEN a configured From but a foreign domain in another originator field  THEN 403, naming that field
    status, body = send_raw(stack, b"From: orders@shop.example\r\n" + field.encode() + b": ceo@evil-corp.example")
    assert status == 403, body
    assert body["error"]["code"] == "sender_not_allowed"
    assert body["error"]["field"] == field
    assert "'evil-corp.example' is not a sending domain" in body["error"]["message"]
    assert stack.queue_messages() == []


@pytest.mark.parametrize(
    ("header", "field", "words"),
    [
        (b"From: orders@shop.example, ceo@shop.example", "From", "exactly one address"),
        (b"From: Staff: orders@shop.example;", "From", "exactly one address"),
        (b"From: orders@shop.example\r\nSender: a@shop.example, b@shop.example", "Sender", "exactly one address"),
        (b"From: orders@shop.example\r\nSender: orders@shop.example <ceo@evil-corp.example>", "Sender", "clean"),
        (b"From: orders@shop.example\r\nResent-From: <a@shop.example>ceo@evil-corp.example", "Resent-From", "clean"),
        # Obsolete syntax the parser tolerates is refused too: quoting the name costs nothing
        (b"From: J. Smith <orders@shop.example>", "From", "period in 'phrase'"),
        (b"From: <@route.example:orders@shop.example>", "From", "obsolete route"),
        # An encoded word where the address belongs: some readers decode it and show ceo@evil-corp.example
        (b"From: =?utf-8?q?ceo=40evil-corp.example?=", "From", "clean"),
        (b"From: orders@shop.example\r\nReply-To: help@desk.example <ceo@evil-corp.example>", "Reply-To", "clean"),
        (b"From: orders@shop.example\r\nReply-To: help@desk..example", "Reply-To", "Reply-To"),
    ],
)
def test_defective_or_plural_originators_are_refused(stack: Stack, header: bytes, field: str, words: str) -> None:
    status, body = send_raw(stack, header)
    assert status == 422, body
    assert body["error"]["code"] == "ambiguous_originator"
    assert body["error"]["field"] == field
    assert words in body["error"]["message"]
    assert stack.queue_messages() == []


def test_reply_to_may_name_another_domain_and_resent_fields_their_own(stack: Stack) -> None:
    # GIVEN a support desk on another domain in Reply-To (normal for transactional mail) and a clean resent block
    header = (
        b'From: "Shop" <orders@shop.example>\r\nSender: robot@smtp.example\r\n'
        b"Reply-To: Help Desk <help@desk.example>, tickets@desk.example\r\n"
        b"Resent-From: ops@shop.example\r\nResent-Sender: robot@shop.example"
    )
    status, body = send_raw(stack, header)
    # THEN it is accepted, and the stored bytes re-parse to exactly the addresses that were checked
    assert status == 202, body
    parsed = message_from_bytes(stored_mime(stack, body["id"]), policy=policy.default)
    assert [a.addr_spec for a in parsed["From"].addresses] == ["orders@shop.example"]
    assert [a.addr_spec for a in parsed["Sender"].addresses] == ["robot@smtp.example"]
    assert [a.addr_spec for a in parsed["Reply-To"].addresses] == ["help@desk.example", "tickets@desk.example"]
    assert [a.addr_spec for a in parsed["Resent-From"].addresses] == ["ops@shop.example"]
    assert [a.addr_spec for a in parsed["Resent-Sender"].addresses] == ["robot@shop.example"]


def test_re_encoding_an_eight_bit_body_keeps_a_long_from_line_as_checked(stack: Stack) -> None:
    # GIVEN a From line longer than 78 characters (legal up to 998) and an 8-bit body, which is re-encoded to 7 bit
    display = "Customer Service of the Shop that has a rather long name, Department of Orders"
    from_line = f'From: "{display}" <orders@shop.example>'.encode()
    assert len(from_line) > 78
    raw = (
        from_line + b"\r\nTo: ann@example.org\r\nSubject: long from\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + "Grüße\r\n".encode()
    )
    status, body = stack.request("POST", "/v1/messages/raw", {"raw": base64.b64encode(raw).decode()})
    assert status == 202, body
    # THEN the From line leaves exactly as submitted (and so as checked), not refolded by the email package
    mime = stored_mime(stack, body["id"])
    assert mime.isascii()
    assert mime.startswith(from_line + b"\r\n")
    parsed = message_from_bytes(mime, policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["From"].addresses] == [(display, "orders@shop.example")]


@pytest.mark.parametrize("name", ["Sender", "sender", "Resent-From", "Resent-Sender", "Reply-To", "From"])
def test_json_headers_cannot_carry_an_originator_field(stack: Stack, name: str) -> None:
    message = {"from": "orders@shop.example", "to": ["ann@example.org"], "subject": "s", "text": "t"}
    status, body = stack.request("POST", "/v1/messages", {**message, "headers": {name: "ceo@evil-corp.example"}})
    assert status == 422, body
    assert "set by Postroom" in body["error"]["message"]
    assert stack.queue_messages() == []


# Display names as a JSON caller may send them: any printable text, quotes, angle brackets, '@', encoded-word lookalikes.
_NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120) | st.sampled_from(
    ["orders@shop.example <ceo@evil-corp.example>", 'a"<ceo@evil-corp.example>', "J. Smith", "=?utf-8?q?x?=", "\\"]
)


# A local part of 64 characters (the most RFC 5321 allows) puts the From line over 78 characters: the email package
# used to refold such a pre-folded field and drop a display name's quotes ('"Shop, Inc" <…>' → 'Shop, Inc <…>').
_LOCAL_PARTS = st.sampled_from(["orders", "o" * 64])


@example(name="Shop, Inc", local="o" * 64, reply_names=[])
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(name=_NAMES, local=_LOCAL_PARTS, reply_names=st.lists(_NAMES, max_size=3))
def test_json_from_and_reply_to_leave_as_exactly_the_checked_addresses(
    name: str, local: str, reply_names: list[str]
) -> None:
    # GIVEN any valid JSON request (whatever its display names)
    try:
        request = SendRequest.model_validate(
            {
                "from": {"email": f"{local}@shop.example", "name": name},
                "reply_to": [{"email": f"r{i}@desk.example", "name": n} for i, n in enumerate(reply_names)],
                "to": ["ann@example.org"],
                "subject": "s",
                "text": "t",
            }
        )
    except ValueError:
        return  # refused at validation (control characters, too long): nothing to build
    # WHEN the accept path checks it  THEN it passes (the builder never writes an ambiguous field) ...
    check_sender(request, SENDING)
    # ... and the message the worker builds re-parses to exactly those addresses
    built = render(build_message(request, message_id="<x@shop.example>", date=datetime(2030, 1, 1, tzinfo=UTC)))
    leaving = check_originators(parse_header_block(built), SENDING.sending_domains)
    assert leaving.addresses() == [
        ("from", (f"{local}@shop.example",)),
        *([("reply-to", tuple(f"r{i}@desk.example" for i in range(len(reply_names))))] if reply_names else []),
    ]
