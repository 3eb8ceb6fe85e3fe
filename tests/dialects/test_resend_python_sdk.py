"""Resend's Python SDK (``resend``, from PyPI) against the local stack, pointed at it by ``resend.api_url`` (the SDK's
base-URL setting, also read from RESEND_API_URL).

Each message the SDK sends is read back through Postroom's own API (``GET /v1/messages/{id}``), through the SDK
(``Emails.get``) and from the loopback MX sink, byte-checked. The error path checks that the SDK raises its own
exception classes with Resend's status codes and error names.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
import resend
from resend.exceptions import InvalidApiKeyError, ResendError, ValidationError

from postroom.local.stack import LocalStack
from postroom.testing.smtp_peers import RecordingSink
from tests.e2e.test_local_stack import PDF, PNG, call, wait_for_status

pytestmark = pytest.mark.e2e


# One stack and one MX sink for the module (see tests/dialects/conftest.py): the tests that read the sink mail
# recipients no other test here uses and wait for their mail to be delivered, so none reads another's.
@pytest.fixture(autouse=True)
def _clean_aws_env(shared_local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``shared_local`` cleaned the environment once for this module."""


@pytest.fixture
def local(shared_local: LocalStack) -> LocalStack:
    return shared_local


@pytest.fixture
def sink(shared_sink: RecordingSink) -> RecordingSink:
    return shared_sink


@pytest.fixture
def sdk(local: LocalStack) -> Iterator[LocalStack]:
    # The SDK keeps its key and base URL in module globals: set for the test, put back after it.
    saved = (resend.api_key, resend.api_url)
    resend.api_key, resend.api_url = local.api_key, local.api_url
    yield local
    resend.api_key, resend.api_url = saved


def delivered(sink: RecordingSink, recipient: str) -> tuple[list[str], EmailMessage]:
    for envelope in sink.messages:
        if recipient in envelope.rcpt_tos:
            parsed = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            assert parsed.defects == []
            return sorted(envelope.rcpt_tos), parsed
    raise AssertionError(f"nothing delivered to {recipient}")


def test_resend_send_reaches_the_mx_byte_for_byte_and_reads_back(sdk: LocalStack, sink: RecordingSink) -> None:
    # GIVEN the Python SDK's documented attachment form (a list of byte values), an inline image, tags, headers
    params: resend.Emails.SendParams = {
        "from": "Shop <orders@shop.example>",
        "to": ["Ann <ann@example.org>", "bob@example.org"],
        "cc": "carl@example.org",
        "bcc": ["audit@example.org"],
        "reply_to": "help@shop.example",
        "subject": "Order #1001 ✓",
        "text": "Thanks for your order.",
        "html": "<p>Thanks! <img src='cid:logo'></p>",
        "headers": {"X-Order-Id": "1001"},
        "tags": [{"name": "category", "value": "order_confirmation"}, {"name": "order", "value": "1001"}],
        "attachments": [
            {"filename": "invoice.pdf", "content": list(PDF), "content_type": "application/pdf"},
            {"filename": "logo.png", "content": list(PNG), "content_type": "image/png", "content_id": "logo"},
        ],
    }
    # WHEN it is sent twice with the same Idempotency-Key
    answer = resend.Emails.send(params, {"idempotency_key": "order-1001"})
    again = resend.Emails.send(params, {"idempotency_key": "order-1001"})
    # THEN one message, Resend's answer carrying Postroom's id
    assert again["id"] == answer["id"]
    record = wait_for_status(sdk, answer["id"], {"delivered"})
    assert record["metadata"] == {"category": "order_confirmation", "order": "1001"}
    assert sorted(r["address"] for r in record["recipients"]) == [
        "ann@example.org", "audit@example.org", "bob@example.org", "carl@example.org",
    ]  # fmt: skip
    # ... readable through the SDK as Resend's email object
    email = resend.Emails.get(answer["id"])
    assert email["last_event"] == "delivered"
    assert email["from"] == "Shop <orders@shop.example>"
    assert email["to"] == ["Ann <ann@example.org>", "bob@example.org"]
    assert email["bcc"] == ["audit@example.org"]
    assert email["tags"] == [{"name": "category", "value": "order_confirmation"}, {"name": "order", "value": "1001"}]
    # ... and the MX got exactly that message, once
    assert sum("ann@example.org" in e.rcpt_tos for e in sink.messages) == 1
    rcpts, msg = delivered(sink, "ann@example.org")
    assert rcpts == ["ann@example.org", "audit@example.org", "bob@example.org", "carl@example.org"]
    assert msg["Subject"] == "Order #1001 ✓"
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@example.org", "bob@example.org"]
    assert msg["Cc"].addresses[0].addr_spec == "carl@example.org"
    assert msg["Bcc"] is None
    assert msg["Reply-To"].addresses[0].addr_spec == "help@shop.example"
    assert msg["X-Order-Id"] == "1001"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Thanks for your order.\n"
    assert "<img src='cid:logo'>" in msg.get_body(("html",)).get_content()
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["invoice.pdf"]["Content-ID"] is None
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"


def test_resend_batch_template_schedule_reschedule_cancel(sdk: LocalStack, sink: RecordingSink) -> None:
    status, body = call(sdk, "PUT", "/v1/templates/welcome", {
        "subject": "Welcome, {{ name }}", "html": "<p>Hello {{ name }}</p>", "text": "Hello {{ name }}",
    })  # fmt: skip
    assert status in (200, 201), body
    # a batch: a plain email and one from a stored template (Resend's template.id is the template's name)
    batch = resend.Batch.send([
        {"from": "orders@shop.example", "to": "dan@example.org", "subject": "One", "text": "1"},
        {"from": "orders@shop.example", "to": "eve@example.org", "template": {"id": "welcome",
                                                                               "variables": {"name": "Eve"}}},
    ])  # fmt: skip
    assert len(batch["data"]) == 2
    for row in batch["data"]:
        wait_for_status(sdk, row["id"], {"delivered"})
    _, eve = delivered(sink, "eve@example.org")
    assert eve["Subject"] == "Welcome, Eve"
    assert eve.get_body(("plain",)).get_content().strip() == "Hello Eve"
    # a scheduled email: held, rescheduled, then cancelled - never sent
    later = datetime.now(UTC) + timedelta(days=2)
    scheduled = resend.Emails.send({"from": "orders@shop.example", "to": "fay@example.org", "subject": "Later",
                                    "text": "later", "scheduled_at": later.isoformat()})  # fmt: skip
    assert resend.Emails.get(scheduled["id"])["last_event"] == "scheduled"
    moved = later + timedelta(days=1)
    updated = resend.Emails.update({"id": scheduled["id"], "scheduled_at": moved.isoformat()})
    assert updated["id"] == scheduled["id"]
    _, record = call(sdk, "GET", f"/v1/messages/{scheduled['id']}")
    assert record["send_at"].startswith(moved.strftime("%Y-%m-%dT%H:%M:%S"))
    cancelled = resend.Emails.cancel(scheduled["id"])
    assert cancelled["id"] == scheduled["id"]
    assert resend.Emails.get(scheduled["id"])["last_event"] == "canceled"
    assert not any("fay@example.org" in e.rcpt_tos for e in sink.messages)
    # cancelling again is refused: it is no longer scheduled
    with pytest.raises(ResendError) as again:
        resend.Emails.cancel(scheduled["id"])
    assert again.value.code == 409


def test_resend_errors_are_the_sdks_own_exceptions(sdk: LocalStack) -> None:
    message = {"from": "orders@shop.example", "subject": "Hi", "text": "Hi"}
    # a bad key: 403 invalid_api_key → InvalidApiKeyError
    resend.api_key = "not-a-key"
    with pytest.raises(InvalidApiKeyError) as bad_key:
        resend.Emails.send({**message, "to": "ann@example.org"})
    assert (bad_key.value.code, bad_key.value.error_type) == (403, "invalid_api_key")
    resend.api_key = sdk.api_key
    # an invalid address: 422 validation_error → ValidationError
    with pytest.raises(ValidationError) as invalid:
        resend.Emails.send({**message, "to": "ann@@example.org"})
    assert (invalid.value.code, invalid.value.error_type) == (422, "validation_error")
    assert "to" in invalid.value.message
    # a suppressed recipient (and no other): 422 validation_error naming it
    status, body = call(sdk, "POST", "/v1/suppressions", {"address": "gone@example.org"})
    assert status in (200, 201), body
    with pytest.raises(ValidationError) as suppressed:
        resend.Emails.send({**message, "to": "gone@example.org"})
    assert suppressed.value.code == 422
    assert "gone@example.org" in suppressed.value.message
    # fields Postroom cannot honour are refused, not ignored
    with pytest.raises(ValidationError) as remote:
        resend.Emails.send({**message, "to": "ann@example.org",
                            "attachments": [{"filename": "a.pdf", "path": "https://example.org/a.pdf"}]})  # fmt: skip
    assert "path" in remote.value.message
    with pytest.raises(ValidationError) as natural:
        resend.Emails.send({**message, "to": "ann@example.org", "scheduled_at": "in 1 hour"})
    assert "scheduled_at" in natural.value.message
    # an unknown email: 404 in Resend's shape
    with pytest.raises(ResendError) as missing:
        resend.Emails.get("msg_00000000000000000000000000")
    assert (missing.value.code, missing.value.error_type) == (404, "not_found")
