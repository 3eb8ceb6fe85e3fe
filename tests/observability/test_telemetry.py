"""What the real handlers publish for operators, from the API call to the MX's reply: the correlation id carried in
SQS, EMF metrics with the dimensions the alarms read, and one log line per recipient with the other side's ids."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from postroom.local.gateway import build_event
from postroom.local.poller import build_sqs_event
from postroom.observability.correlation import current_correlation_id, message_attributes, sqs_correlation_id
from postroom.observability.metrics import Metric
from postroom.observability.records import with_record_context
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink, Stage
from tests.conftest import Stack, start_stack
from tests.observability.conftest import run_worker

REQUEST_ID = "c0ffee00-1234-4abc-9def-000000000001"
MESSAGE = {
    "from": "Shop <orders@smtp.example>",
    "to": ["ann@gmail.com", "bob@other.example"],
    "subject": "Your order",
    "text": "Thanks!",
}


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@pytest.fixture
def smtp_stack(monkeypatch: pytest.MonkeyPatch, sink: RecordingSink) -> Iterator[Stack]:
    zone = {
        "gmail.com": {"MX": [(5, "gmail-smtp-in.l.google.test")]},
        "gmail-smtp-in.l.google.test": {"A": ["127.0.0.1"]},
        "other.example": {"MX": [(10, "mx.other.example")]},
        "mx.other.example": {"A": ["127.0.0.1"]},
    }
    monkeypatch.setenv("POSTROOM_SMTP_TIMEOUT", "2")
    with LoopbackDnsServer(zone=zone) as dns, mock_aws():
        yield start_stack(
            monkeypatch, parameters={"DnsNameservers": f"127.0.0.1:{dns.port}", "SmtpPort": str(sink.port)}
        )


def send(stack: Stack, body: dict[str, Any]) -> str:
    event = build_event(
        method="POST",
        path="/v1/messages",
        resource="/v1/messages",
        query="",
        headers=[("Authorization", f"Bearer {stack.api_key}"), ("Content-Type", "application/json")],
        body=json.dumps(body).encode(),
        source_ip="127.0.0.1",
        path_parameters={},
        stage="api",
    )
    event["requestContext"]["requestId"] = REQUEST_ID
    result = stack.send_api.invoke(event)
    assert result["statusCode"] == 202, result
    return json.loads(result["body"])["id"]


def metric_values(documents: list[dict[str, Any]], name: str, **dimensions: str) -> list[float]:
    """Values of ``name`` in EMF documents whose dimension sets include exactly ``dimensions`` (plus service)."""
    wanted = {"service", *dimensions}
    found: list[float] = []
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Postroom"
        names = {m["Name"] for m in directive["Metrics"]}
        if name not in names or not any(set(ds) == wanted for ds in directive["Dimensions"]):
            continue
        if any(document.get(k) != v for k, v in dimensions.items()):
            continue
        value = document[name]
        found.extend(value if isinstance(value, list) else [value])
    return found


def test_the_api_request_id_follows_the_message_to_the_receiving_servers_queue_id(
    smtp_stack: Stack,
    sink: RecordingSink,
    emf: Callable[[], list[dict[str, Any]]],
    service_log: Callable[[], list[dict[str, Any]]],
) -> None:
    # GIVEN an MX that takes mail for gmail.com and refuses bob@other.example
    sink.script(Stage.RCPT, "550 5.1.1 <bob@other.example>: Recipient address rejected", match="bob@")
    # WHEN a message is sent through the API (request id REQUEST_ID) and the worker delivers it
    message_id = send(smtp_stack, MESSAGE)
    sqs = boto3.client("sqs")
    (queued,) = sqs.receive_message(
        QueueUrl=smtp_stack.resources["DeliveryQueue"]["Ref"], MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    assert run_worker(smtp_stack) == {"batchItemFailures": []}

    # THEN the queue pointer carried the request id as the correlation_id attribute
    assert queued["MessageAttributes"]["correlation_id"]["StringValue"] == REQUEST_ID
    # ... and each recipient's result was logged under it, with the MX's queue id and no full address
    _, record = smtp_stack.request("GET", f"/v1/messages/{message_id}")
    stored_reply = next(r["reply"] for r in record["recipients"] if r["address"] == "ann@gmail.com")
    assert stored_reply.startswith("250 2.0.0 OK: queued as ")
    lines = [line for line in service_log() if line.get("message") == "recipient result"]
    assert {line["correlation_id"] for line in lines} == {REQUEST_ID}
    by_domain = {line["recipient_domain"]: line for line in lines}
    assert by_domain["gmail.com"]["outcome"] == "delivered"
    assert by_domain["gmail.com"]["domain_class"] == "gmail"
    assert by_domain["gmail.com"]["message_id"] == message_id
    assert by_domain["gmail.com"]["queue_id"] == stored_reply.rpartition(" ")[2]
    assert by_domain["other.example"]["outcome"] == "bounced"
    assert by_domain["other.example"]["smtp_code"] == 550
    assert "bob@" not in json.dumps(lines)
    assert "…@other.example" in by_domain["other.example"]["reply"]

    # ... and the metrics the alarms read were published, in total and by path and provider
    documents = emf()
    assert metric_values(documents, Metric.MESSAGES_ACCEPTED) == [1]
    assert metric_values(documents, Metric.RECIPIENTS_ACCEPTED) == [2]
    assert metric_values(documents, Metric.DELIVERED, delivery_path="smtp", domain_class="gmail") == [1]
    assert metric_values(documents, Metric.BOUNCED, delivery_path="smtp", domain_class="other") == [1]
    assert sum(metric_values(documents, Metric.DELIVERED)) == 1
    assert sum(metric_values(documents, Metric.BOUNCED)) == 1
    latencies = metric_values(documents, Metric.DELIVERY_LATENCY)
    assert len(latencies) == 2
    assert all(0 <= value < 60 for value in latencies)
    (age,) = metric_values(documents, Metric.QUEUE_AGE)
    assert 0 <= age < 60


def test_a_give_up_counts_as_failed_not_deferred(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch, emf: Callable[[], list[dict[str, Any]]]
) -> None:
    # GIVEN one attempt allowed and an MX that defers everything
    monkeypatch.setenv("POSTROOM_MAX_ATTEMPTS", "1")
    from postroom.wiring.services import reset_services

    reset_services()
    sink.script(Stage.RCPT, "451 4.7.1 greylisted, try later")
    send(smtp_stack, {**MESSAGE, "to": ["ann@gmail.com"]})
    # WHEN the worker's only attempt is deferred
    run_worker(smtp_stack)
    # THEN the recipient is counted once, as failed, with its latency
    documents = emf()
    assert metric_values(documents, Metric.FAILED, delivery_path="smtp", domain_class="gmail") == [1]
    assert metric_values(documents, Metric.DEFERRED) == []
    assert len(metric_values(documents, Metric.DELIVERY_LATENCY)) == 1


def test_each_record_is_handled_under_its_own_correlation_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN two SQS records, one carrying a correlation id and one without
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "postroom")
    with_id = {
        "MessageId": "sqs-1",
        "ReceiptHandle": "r1",
        "Body": json.dumps({"v": 1, "id": "msg_1"}),
        "Attributes": {"SentTimestamp": "1", "ApproximateReceiveCount": "1"},
        "MessageAttributes": message_attributes("req-42"),
    }
    without_id = {**with_id, "MessageId": "sqs-2", "MessageAttributes": {}}
    event = build_sqs_event([with_id, without_id], "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    seen: list[str | None] = []

    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    handler = with_record_context(lambda record: seen.append(current_correlation_id()))
    # WHEN each is handled through the worker's record context
    for raw in event["Records"]:
        handler(SQSRecord(raw))
    # THEN each saw its own id (the SQS message id when none was carried), and none leaks past its record
    assert seen == ["req-42", "sqs-2"]
    assert current_correlation_id() is None


def test_unsafe_correlation_ids_are_not_carried() -> None:
    assert message_attributes("req\n-forged") == {}
    assert message_attributes(None) == {}
    assert sqs_correlation_id({"correlation_id": {"stringValue": "a b"}}, "fallback") == "fallback"


def test_feedback_after_the_hand_off_is_counted_with_the_same_dimensions(
    emf: Callable[[], list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from postroom.observability.metrics import count_feedback

    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Postroom")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "postroom")
    # GIVEN SES reports a complaint from an Outlook.com recipient  WHEN it is counted
    count_feedback(Metric.COMPLAINED, delivery_path="ses", recipient="carol@outlook.com")
    # THEN the complaint-rate alarm's metric and the provider breakdown both get it
    documents = emf()
    assert metric_values(documents, Metric.COMPLAINED, delivery_path="ses", domain_class="microsoft") == [1]
    assert metric_values(documents, Metric.COMPLAINED) == [1]
    with pytest.raises(ValueError, match="not a feedback metric"):
        count_feedback(Metric.DELIVERED, delivery_path="ses", recipient="carol@outlook.com")
