"""End to end through the local stack: HTTP → send API handler → SQS (moto) → worker handler → a real SMTP server
on loopback found through a real DNS server on loopback. The same harness `postroom local` runs."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import boto3
import pytest

from postroom.local.stack import LocalStack, StackConfig
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink, Stage

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 16


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


ZONE = {
    "example.org": {"MX": [(10, "mx.example.org")]},
    "mx.example.org": {"A": ["127.0.0.1"]},
    "dead.example": {"MX": [(10, "mx.dead.example")]},
    "mx.dead.example": {"A": ["127.0.0.1"]},
}


@pytest.fixture
def dns(sink: RecordingSink) -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer(zone=ZONE) as server:
        yield server


def start(sink: RecordingSink, dns: LoopbackDnsServer, monkeypatch: pytest.MonkeyPatch, **env: str) -> LocalStack:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = StackConfig(
        api_port=0,
        sandbox=False,
        poll_wait_seconds=1,
        parameters={
            "SendingDomains": "shop.example",
            "DefaultDelivery": "smtp",
            "DnsNameservers": f"127.0.0.1:{dns.port}",
            "SmtpPort": str(sink.port),
            "HeloName": "postroom.test",
        },
    )
    return LocalStack(config).start()


@pytest.fixture
def local(sink: RecordingSink, dns: LoopbackDnsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    stack = start(sink, dns, monkeypatch, POSTROOM_RETRY_BASE_SECONDS="0", POSTROOM_SMTP_TIMEOUT="2")
    yield stack
    stack.stop()


def call(stack: LocalStack, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        stack.api_url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def wait_for_status(stack: LocalStack, msg_id: str, wanted: set[str], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, record = call(stack, "GET", f"/v1/messages/{msg_id}")
        if record.get("status") in wanted:
            return record
        time.sleep(0.05)
    raise AssertionError(f"{msg_id} never reached {wanted}: {record}")


def test_send_delivers_to_the_mx_byte_for_byte(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN a message with text, HTML, an inline image, an attachment, a custom header and a Bcc
    status, body = call(
        local,
        "POST",
        "/v1/messages",
        {
            "from": "Jörg's Shop <orders@shop.example>",
            "to": ["Ann <ann@example.org>"],
            "bcc": ["audit@example.org"],
            "subject": "Ihre Bestellung #1001 ✓",
            "text": "Danke für Ihre Bestellung.",
            "html": "<p>Danke! <img src='cid:logo'></p>",
            "headers": {"X-Order-Id": "1001"},
            "attachments": [
                {"filename": "invoice.pdf", "content": base64.b64encode(PDF).decode()},
                {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "content_id": "logo"},
            ],
        },
    )
    assert status == 202, body
    # WHEN the worker picks it up
    record = wait_for_status(local, body["id"], {"delivered"})
    # THEN the sink got one transaction for both recipients, with exactly the content sent
    assert len(sink.messages) == 1
    envelope = sink.messages[0]
    assert envelope.mail_from == "orders@shop.example"
    assert sorted(envelope.rcpt_tos) == ["ann@example.org", "audit@example.org"]
    msg = message_from_bytes(envelope.content, policy=policy.default)
    assert msg.defects == []
    assert msg["Subject"] == "Ihre Bestellung #1001 ✓"
    assert msg["From"].addresses[0].display_name == "Jörg's Shop"
    assert msg["X-Order-Id"] == "1001"
    assert msg["Bcc"] is None
    assert b"audit@example.org" not in envelope.content
    assert msg["Message-ID"] == record["message_id_header"]
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Danke für Ihre Bestellung.\n"
    assert "<p>Danke! <img src='cid:logo'></p>" in msg.get_body(("html",)).get_content()
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"
    # and the status names the MX host, the reply and the attempt
    for recipient in record["recipients"]:
        assert recipient["status"] == "delivered"
        assert recipient["smtp_code"] == 250
        assert recipient["mx_host"] == "mx.example.org"
        assert recipient["attempts"] == 1
        assert recipient["delivery"] == "smtp"
    assert record["attempts"] == 1


def test_451_is_deferred_then_delivered_on_retry(local: LocalStack, sink: RecordingSink) -> None:
    sink.script(Stage.DATA, "451 4.3.0 try again later", times=1)  # first DATA refused, then normal
    status, body = call(
        local,
        "POST",
        "/v1/messages",
        {"from": "orders@shop.example", "to": "ann@example.org", "subject": "retry", "text": "x"},
    )
    assert status == 202
    record = wait_for_status(local, body["id"], {"delivered"})
    assert record["attempts"] == 2
    assert record["recipients"][0]["attempts"] == 2
    assert len(sink.messages) == 1


def test_550_bounces_with_the_reply_text(local: LocalStack, sink: RecordingSink) -> None:
    sink.script(Stage.RCPT, "550 5.1.1 <nobody@example.org>: no such user", match="nobody@example.org")
    _, body = call(
        local,
        "POST",
        "/v1/messages",
        {
            "from": "orders@shop.example",
            "to": ["nobody@example.org", "ann@example.org"],
            "subject": "bounce",
            "text": "x",
        },
    )
    record = wait_for_status(local, body["id"], {"partially_delivered"})
    by_address = {r["address"]: r for r in record["recipients"]}
    assert by_address["nobody@example.org"]["status"] == "bounced"
    assert by_address["nobody@example.org"]["smtp_code"] == 550
    assert by_address["nobody@example.org"]["enhanced_status"] == "5.1.1"
    assert "no such user" in by_address["nobody@example.org"]["reply"]
    assert by_address["ann@example.org"]["status"] == "delivered"


def test_dead_host_is_retried_then_failed_into_the_dlq(
    sink: RecordingSink, dns: LoopbackDnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an MX whose port nothing listens on, and a limit of 3 attempts
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    stack = start(
        sink,
        dns,
        monkeypatch,
        POSTROOM_RETRY_BASE_SECONDS="0",
        POSTROOM_MAX_ATTEMPTS="3",
        POSTROOM_SMTP_PORT=str(closed_port),
    )
    try:
        _, body = call(
            stack,
            "POST",
            "/v1/messages",
            {"from": "orders@shop.example", "to": "ann@dead.example", "subject": "dead", "text": "x"},
        )
        # THEN it is tried 3 times, fails with a reason, and its pointer waits in the DLQ with that reason
        record = wait_for_status(stack, body["id"], {"failed"})
        assert record["attempts"] == 3
        assert "gave up after 3 attempts" in record["reason"]
        assert record["recipients"][0]["status"] == "failed"
        assert "mx.dead.example" in record["recipients"][0]["reply"]
        sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
        dlq = stack.resources["DeliveryDeadLetterQueue"]["Ref"]
        parked = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
        assert json.loads(parked[0]["Body"]) == {"v": 1, "id": body["id"], "reason": record["reason"]}
        assert parked[0]["MessageAttributes"]["reason"]["StringValue"] == record["reason"]
    finally:
        stack.stop()


def stored_mime(stack: LocalStack, msg_id: str) -> bytes:
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
    bucket = stack.resources["BodiesBucket"]["Ref"]
    return s3.get_object(Bucket=bucket, Key=f"messages/{msg_id}/message.eml")["Body"].read()


def ses_raw_messages(stack: LocalStack) -> list[bytes]:
    # moto deep-copies every backend for data.json and answers 500 when another thread (a poller, the local SES
    # event publisher) changes one meanwhile: ask again.
    for _ in range(20):
        try:
            with urllib.request.urlopen(f"{stack.aws_endpoint}/moto-api/data.json", timeout=10) as response:
                data = json.loads(response.read())
            break
        except urllib.error.HTTPError:
            time.sleep(0.1)
    return [m["raw_data"].encode() for m in data["ses"]["RawMessage"]]


def test_ses_and_smtp_send_the_same_stored_mime(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN the same message sent once over each path
    message = {"from": "orders@shop.example", "to": "ann@example.org", "subject": "same bytes", "html": "<b>hi</b>"}
    _, by_smtp = call(local, "POST", "/v1/messages", {**message, "delivery": "smtp"})
    _, by_ses = call(local, "POST", "/v1/messages", {**message, "delivery": "ses"})
    wait_for_status(local, by_smtp["id"], {"delivered"})
    # "sent" when SES took it, "delivered" once its Delivery event has arrived
    ses_record = wait_for_status(local, by_ses["id"], {"sent", "delivered"})
    # THEN each path carried exactly the MIME the worker built and stored
    assert ses_record["recipients"][0]["ses_message_id"]
    assert ses_record["recipients"][0]["delivery"] == "ses"
    # (the last one SES got: moto's backends live as long as the process, so earlier tests' sends are there too)
    assert ses_raw_messages(local)[-1] == stored_mime(local, by_ses["id"])
    assert sink.messages[0].content == stored_mime(local, by_smtp["id"])
