"""Webhooks in the subscriber's dialect: a Postmark, a SendGrid and a Resend subscription each receive the same
deliveries and bounces in that provider's JSON, and the signatures verify with the providers' own published code —
SendGrid's ``EventWebhook`` helper (ECDSA, from the ``sendgrid`` package) and Svix's ``Webhook`` (which Resend's
docs use), Standard Webhooks' for Postmark's extra headers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook
from standardwebhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError

from postroom.testing.smtp_peers import RecordingSink, Stage
from tests.events.conftest import EventsStack, Receiver

MESSAGE = {
    "from": "orders@smtp.example",
    "subject": "Your order",
    "text": "Thanks!",
    "tags": ["order"],
    "metadata": {"order_id": "1001"},
    "to": ["ann@example.org", "gone@example.org"],
}


def _subscribe(events_stack: EventsStack, url: str, dialect: str) -> dict[str, Any]:
    status, body = events_stack.call("POST", "/v1/webhooks", {"url": f"{url}?dialect={dialect}", "dialect": dialect})
    assert status == 201, body
    assert body["dialect"] == dialect
    return body


def _requests(receiver: Receiver, dialect: str) -> list[Any]:
    return [r for r in receiver.requests if r.path.endswith(f"dialect={dialect}")]


@pytest.fixture
def delivered_and_bounced(
    events_stack: EventsStack, sink: RecordingSink, receiver: Receiver
) -> dict[str, dict[str, Any]]:
    """GIVEN one subscription per dialect WHEN a message is delivered to ann and bounces (550 5.1.1) for gone."""
    hooks = {dialect: _subscribe(events_stack, receiver.url, dialect) for dialect in ("postmark", "sendgrid", "resend")}
    sink.script(Stage.RCPT, "550 5.1.1 no such user", match="gone@")
    hooks["message"] = {"id": events_stack.send(MESSAGE)}
    events_stack.deliver()
    events_stack.webhooks()
    return hooks


def test_sendgrid_gets_one_signed_array_that_its_own_helper_verifies(
    delivered_and_bounced: dict[str, dict[str, Any]], receiver: Receiver
) -> None:
    hook = delivered_and_bounced["sendgrid"]
    # THEN the secret is never shown, only SendGrid's kind of verification key
    assert "secret" not in hook
    verifier = EventWebhook(hook["verification_key"])
    # AND the two events of the batch came as one array, verified by the sendgrid package's EventWebhook
    [request] = _requests(receiver, "sendgrid")
    signature = request.headers["x-twilio-email-event-webhook-signature"]
    timestamp = request.headers["x-twilio-email-event-webhook-timestamp"]
    assert verifier.verify_signature(request.body.decode(), signature, timestamp) is True
    events = json.loads(request.body)
    by_email = {event["email"]: event for event in events}
    assert by_email["ann@example.org"]["event"] == "delivered"
    assert by_email["gone@example.org"]["event"] == "bounce"
    assert by_email["gone@example.org"]["type"] == "bounce"
    assert by_email["gone@example.org"]["status"] == "5.1.1"
    assert all(e["sg_message_id"] == delivered_and_bounced["message"]["id"] for e in events)
    assert all(e["order_id"] == "1001" and e["category"] == ["order"] for e in events)
    assert all(isinstance(e["timestamp"], int) for e in events)
    # a changed body or another timestamp does not verify
    assert verifier.verify_signature(request.body.decode().replace("ann", "eve"), signature, timestamp) is False
    assert verifier.verify_signature(request.body.decode(), signature, str(int(timestamp) + 1)) is False


def test_resend_gets_its_event_json_under_svix_headers_that_svix_verifies(
    delivered_and_bounced: dict[str, dict[str, Any]], receiver: Receiver
) -> None:
    verifier = SvixWebhook(delivered_and_bounced["resend"]["secret"])
    requests = _requests(receiver, "resend")
    assert len(requests) == 2
    kinds = set()
    for request in requests:
        # Svix's helper would fall back to webhook-* headers: only the svix-* ones are there
        assert "webhook-signature" not in request.headers
        assert request.headers["svix-id"].startswith("evt_")
        verifier.verify(request.body, request.headers)  # raises unless the signature verifies; returns nothing
        payload = json.loads(request.body)
        assert payload["data"]["email_id"] == delivered_and_bounced["message"]["id"]
        kinds.add((payload["type"], payload["data"]["to"][0]))
        if payload["type"] == "email.bounced":
            assert payload["data"]["bounce"]["type"] == "Permanent"
    assert kinds == {("email.delivered", "ann@example.org"), ("email.bounced", "gone@example.org")}
    with pytest.raises(WebhookVerificationError):
        verifier.verify(requests[0].body.replace(b"ann", b"eve"), requests[0].headers)


def test_postmark_gets_delivery_and_bounce_records(
    delivered_and_bounced: dict[str, dict[str, Any]], receiver: Receiver
) -> None:
    verifier = StandardWebhook(delivered_and_bounced["postmark"]["secret"])
    records = {}
    for request in _requests(receiver, "postmark"):
        record = verifier.verify(request.body, request.headers)
        records[record["RecordType"]] = record
    assert set(records) == {"Delivery", "Bounce"}
    assert records["Delivery"]["Recipient"] == "ann@example.org"
    assert records["Delivery"]["MessageID"] == delivered_and_bounced["message"]["id"]
    assert records["Delivery"]["Tag"] == "order"
    assert records["Delivery"]["Metadata"] == {"order_id": "1001"}
    bounce = records["Bounce"]
    assert (bounce["Email"], bounce["Type"], bounce["TypeCode"], bounce["Inactive"]) == (
        "gone@example.org",
        "HardBounce",
        1,
        True,
    )


def test_a_sendgrid_subscription_refuses_a_given_secret(events_stack: EventsStack, receiver: Receiver) -> None:
    body = {"url": receiver.url, "dialect": "sendgrid", "secret": "whsec_" + "A" * 44}
    status, answer = events_stack.call("POST", "/v1/webhooks", body)
    assert status == 422
    assert answer["error"]["field"] == "secret"
    status, answer = events_stack.call("POST", "/v1/webhooks", {"url": receiver.url, "dialect": "mailgun"})
    assert status == 422
