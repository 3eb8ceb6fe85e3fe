"""SES event publishing → SNS → SQS → the events function: statuses and timelines change exactly once per event,
even when SNS delivers a notification twice; hard bounces and complaints suppress; early events wait for the worker."""

from __future__ import annotations

import json
from typing import Any

import boto3

from postroom.local.poller import build_sqs_event
from tests.events.conftest import EventsStack

SES_MESSAGE = {"from": "orders@shop.example", "subject": "Your order", "text": "Thanks!", "delivery": "ses"}


def sent_via_ses(events_stack: EventsStack, to: list[str], **extra: Any) -> dict[str, Any]:
    msg_id = events_stack.send({**SES_MESSAGE, "to": to, **extra})
    events_stack.deliver()
    record = events_stack.record(msg_id)
    assert record["status"] == "sent", record  # SES took it; delivery is for SES's events to say
    return record


def ses_event(kind: str, record: dict[str, Any], section: dict[str, Any] | None = None) -> dict[str, Any]:
    """An SES event-publishing document as AWS sends it (docs: "Examples of event data that Amazon SES publishes")."""
    recipients = [r["address"] for r in record["recipients"]]
    document: dict[str, Any] = {
        "eventType": kind,
        "mail": {
            "timestamp": "2026-11-27T10:00:00.000Z",
            "source": "orders@shop.example",
            "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/shop.example",
            "sendingAccountId": "123456789012",
            "messageId": record["recipients"][0]["ses_message_id"],
            "destination": recipients,
            "headersTruncated": False,
            "headers": [{"name": "Message-ID", "value": record["message_id_header"]}],
            "commonHeaders": {
                "from": ["orders@shop.example"],
                "to": recipients,
                "messageId": record["message_id_header"],
            },
            "tags": {"ses:configuration-set": ["postroom"]},
        },
    }
    if section is not None:
        document[{"Rendering Failure": "failure"}.get(kind, kind[0].lower() + kind[1:])] = section
    return document


def publish(events_stack: EventsStack, document: dict[str, Any]) -> None:
    """What SES does: publish the JSON document to the configuration set's topic (SNS wraps it for the queue)."""
    topic = events_stack.stack.resources["SesEventsTopic"]["Ref"]
    boto3.client("sns").publish(TopicArn=topic, Message=json.dumps(document))


def bounce(address: str, kind: str = "Permanent", feedback: str = "fb-1") -> dict[str, Any]:
    return {
        "bounceType": kind,
        "bounceSubType": "General" if kind == "Permanent" else "MailboxFull",
        "bouncedRecipients": [
            {
                "emailAddress": address,
                "action": "failed",
                "status": "5.1.1" if kind == "Permanent" else "5.2.2",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown" if kind == "Permanent" else "smtp; 552 5.2.2 full",
            }
        ],
        "timestamp": "2026-11-27T10:00:05.000Z",
        "feedbackId": feedback,
        "reportingMTA": "dsn; a1-2.smtp-out.amazonses.com",
    }


def test_delivery_bounce_and_complaint_update_status_once_despite_duplicates(events_stack: EventsStack) -> None:
    # GIVEN a message SES accepted for three recipients
    record = sent_via_ses(events_stack, ["ann@example.org", "gone@example.org", "grumpy@example.org"])
    msg_id = record["id"]
    delivery = {
        "timestamp": "2026-11-27T10:00:02.000Z",
        "processingTimeMillis": 900,
        "recipients": ["ann@example.org", "grumpy@example.org"],
        "smtpResponse": "250 2.0.0 OK 1701 - gsmtp",
        "reportingMTA": "a1-2.smtp-out.amazonses.com",
    }
    complaint = {
        "complainedRecipients": [{"emailAddress": "grumpy@example.org"}],
        "timestamp": "2026-11-27T11:00:00.000Z",
        "feedbackId": "fb-2",
        "complaintFeedbackType": "abuse",
        "userAgent": "Mail.example FBL",
    }
    # WHEN SES reports delivery, a hard bounce and a complaint, and SNS delivers each of them twice
    for document in (
        ses_event("Delivery", record, delivery),
        ses_event("Bounce", record, bounce("gone@example.org")),
        ses_event("Complaint", record, complaint),
    ):
        publish(events_stack, document)
        publish(events_stack, document)
    assert events_stack.ses_events() == 6
    # THEN each recipient moved once: delivered, bounced (with SES's diagnostic), complaint leaves delivery standing
    after = events_stack.record(msg_id)
    by_address = {r["address"]: r for r in after["recipients"]}
    assert by_address["ann@example.org"]["status"] == "delivered"
    assert by_address["ann@example.org"]["smtp_code"] == 250
    assert by_address["gone@example.org"]["status"] == "bounced"
    assert by_address["gone@example.org"]["enhanced_status"] == "5.1.1"
    assert "user unknown" in by_address["gone@example.org"]["reply"]
    assert by_address["grumpy@example.org"]["status"] == "delivered"
    assert after["status"] == "partially_delivered"
    # and the timeline holds each event exactly once (the worker's "sent" and SES's own agree on one per recipient)
    timeline = events_stack.timeline(msg_id)
    kinds = sorted((e["recipient"], e["type"]) for e in timeline["data"])
    assert kinds == sorted(
        [
            ("ann@example.org", "sent"),
            ("gone@example.org", "sent"),
            ("grumpy@example.org", "sent"),
            ("ann@example.org", "delivered"),
            ("grumpy@example.org", "delivered"),
            ("gone@example.org", "bounced"),
            ("grumpy@example.org", "complained"),
        ]
    )
    bounced = next(e for e in timeline["data"] if e["type"] == "bounced")
    assert bounced["ses_message_id"] == record["recipients"][0]["ses_message_id"]
    assert (bounced["details"]["bounce_type"], bounced["source"], bounced["message_id"]) == ("hard", "ses", msg_id)
    assert timeline["recipients"]["gone@example.org"]["status"] == "bounced"
    # the hard bounce and the complaint suppress their addresses, with the reason
    _, listed = events_stack.get("/v1/suppressions")
    assert {(e["address"], e["reason"]) for e in listed["data"]} == {
        ("gone@example.org", "hard_bounce"),
        ("grumpy@example.org", "complaint"),
    }


def test_ses_send_event_and_transient_bounce(events_stack: EventsStack) -> None:
    record = sent_via_ses(events_stack, ["full@example.org"])
    # WHEN SES reports its own Send event (the worker already recorded "sent") and then gives up on a full mailbox
    publish(events_stack, ses_event("Send", record, {}))
    publish(events_stack, ses_event("Bounce", record, bounce("full@example.org", kind="Transient")))
    events_stack.ses_events()
    # THEN "sent" is there once, the bounce is soft and suppresses nothing
    types = [e["type"] for e in events_stack.timeline(record["id"])["data"]]
    assert types == ["sent", "bounced"]
    assert events_stack.record(record["id"])["status"] == "bounced"
    assert events_stack.get("/v1/suppressions")[1]["data"] == []


def test_event_before_the_worker_saved_the_send_is_retried(events_stack: EventsStack) -> None:
    # GIVEN a message still queued (the worker has not recorded SES's message id yet)
    msg_id = events_stack.send({**SES_MESSAGE, "to": ["ann@example.org"]})
    record = events_stack.record(msg_id)
    record["recipients"][0]["ses_message_id"] = "0100-early"
    publish(events_stack, ses_event("Delivery", record, {"recipients": ["ann@example.org"], "timestamp": "x"}))
    sqs = boto3.client("sqs")
    queue = events_stack.stack.resources["SesEventsQueue"]
    (message,) = sqs.receive_message(QueueUrl=queue["Ref"], AttributeNames=["All"])["Messages"]
    # WHEN the events function gets the report
    result = events_stack.functions["EventsFunction"].invoke(build_sqs_event([message], queue["Arn"], "us-east-1"))
    # THEN it is reported back as a failure to retry, and nothing changed
    assert result["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    assert events_stack.timeline(msg_id)["data"] == []
    assert events_stack.record(msg_id)["status"] == "queued"


def test_moto_simulator_notification_with_an_object_message_is_read_and_ignored(events_stack: EventsStack) -> None:
    # GIVEN moto's SES mailbox simulator publishing identity notifications to the events topic (there the SNS
    # envelope's Message is a JSON object, not a string, and the canned document names no Postroom message)
    topic = events_stack.stack.resources["SesEventsTopic"]["Ref"]
    boto3.client("ses").set_identity_notification_topic(
        Identity="shop.example", NotificationType="Bounce", SnsTopic=topic
    )
    record = sent_via_ses(events_stack, ["bounce@simulator.amazonses.com"])
    messages = boto3.client("sqs").receive_message(
        QueueUrl=events_stack.stack.resources["SesEventsQueue"]["Ref"], VisibilityTimeout=0
    )["Messages"]
    assert isinstance(json.loads(messages[0]["Body"])["Message"], dict)
    # WHEN the events function reads it
    assert events_stack.ses_events() == 1
    # THEN it is consumed without error and changes nothing
    assert events_stack.record(record["id"])["status"] == "sent"
    assert [e["type"] for e in events_stack.timeline(record["id"])["data"]] == ["sent"]
