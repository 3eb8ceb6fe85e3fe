"""Pieces of the events feature that need no AWS: SES document shapes, link tokens, event ids and the feed's bounds."""

from __future__ import annotations

import json

import pytest

from postroom.events.event_model import boundary_id, event_time_ms, new_event_id
from postroom.events.ses_notifications import documents, reports
from postroom.tracking.tokens import InvalidTokenError, LinkClaims, LinkKind, LinkSigner

SES_BOUNCE = {
    "eventType": "Bounce",
    "mail": {
        "messageId": "0100-abc",
        "destination": ["gone@example.org"],
        "commonHeaders": {"messageId": "<01m8dp31txq1jyxbxv7tsb4299@shop.example>"},
    },
    "bounce": {
        "bounceType": "Permanent",
        "bouncedRecipients": [{"emailAddress": "gone@example.org", "status": "5.1.1"}],
        "timestamp": "2026-11-27T10:00:05Z",
        "feedbackId": "fb",
    },
}


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Type": "Notification", "MessageId": "1", "Message": json.dumps(SES_BOUNCE)}),  # SNS on AWS
        json.dumps({"Type": "Notification", "MessageId": "1", "Message": SES_BOUNCE}),  # SNS in moto
        json.dumps(SES_BOUNCE),  # SNS raw message delivery
        json.dumps({"source": "aws.ses", "detail-type": "Email Bounced", "detail": SES_BOUNCE}),  # EventBridge
    ],
)
def test_every_envelope_shape_yields_the_same_report(body: str) -> None:
    (report,) = [r for document in documents(body) for r in reports(document)]
    assert (report.type.value, report.recipient, report.postroom_id) == (
        "bounced",
        "gone@example.org",
        "msg_01m8dp31txq1jyxbxv7tsb4299",
    )
    assert report.details["bounce_type"] == "hard"
    assert report.occurred_at == "2026-11-27T10:00:05.000Z"


def test_documents_that_are_not_ses_events_are_refused() -> None:
    with pytest.raises(ValueError, match="not an SES event"):
        documents(json.dumps({"Type": "Notification", "Message": "{}"}))


def test_a_foreign_message_id_header_names_no_postroom_message() -> None:
    document = json.loads(json.dumps(SES_BOUNCE))
    document["mail"]["commonHeaders"]["messageId"] = "<custom-id@elsewhere.example>"
    assert next(reports(document)).postroom_id is None


def test_link_tokens_round_trip_and_refuse_tampering() -> None:
    signer = LinkSigner("k" * 32, "https://links.example/")
    claims = LinkClaims(LinkKind.CLICK, "msg_1", "ann@example.org", "https://shop.example/?a=1&b=2")
    token = signer.token(claims)
    assert signer.url(claims) == f"https://links.example/t/c/{token}"
    assert signer.verify(token, LinkKind.CLICK) == claims
    payload, signature = token.split(".")
    with pytest.raises(InvalidTokenError):
        signer.verify(token, LinkKind.UNSUBSCRIBE)  # a click link is not an unsubscribe link
    with pytest.raises(InvalidTokenError):
        signer.verify(payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature, LinkKind.CLICK)
    with pytest.raises(InvalidTokenError):
        LinkSigner("x" * 32, "https://links.example").verify(token, LinkKind.CLICK)  # another key
    with pytest.raises(InvalidTokenError):
        signer.verify("garbage", LinkKind.CLICK)


def test_event_ids_carry_their_time_and_the_boundary_bounds_them() -> None:
    ms = 1_795_000_000_123
    event_id = new_event_id(ms)
    assert event_time_ms(event_id) == ms
    assert new_event_id(ms - 1) < event_id <= boundary_id(ms) < new_event_id(ms + 1)
