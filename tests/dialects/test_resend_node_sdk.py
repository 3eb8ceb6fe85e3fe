"""Node's official ``resend`` client (npm, tests/sdk/node) against the local stack, pointed at it by its ``baseUrl``
option. The script tests/sdk/node/resend.mjs makes the calls; this module checks the answers, the mail read back
through Postroom's API and the bytes the loopback MX received, and the SDK's ``{error: {name, statusCode}}``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from postroom.local.stack import LocalStack
from postroom.testing.smtp_peers import RecordingSink
from tests.dialects.node_sdk import run_node
from tests.e2e.test_local_stack import PDF, PNG, call, wait_for_status

pytestmark = pytest.mark.e2e


# One stack and one MX sink for the module (see tests/dialects/conftest.py): only the send test reads the sink, and
# the error test delivers nothing, so neither reads the other's mail.
@pytest.fixture(autouse=True)
def _clean_aws_env(shared_local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``shared_local`` cleaned the environment once for this module."""


@pytest.fixture
def local(shared_local: LocalStack) -> LocalStack:
    return shared_local


@pytest.fixture
def sink(shared_sink: RecordingSink) -> RecordingSink:
    return shared_sink


def resend_node(stack: LocalStack, calls: list[dict]) -> list[dict]:
    return run_node("resend.mjs", "resend", stack, calls)


def test_node_resend_send_batch_schedule_and_cancel(local: LocalStack, sink: RecordingSink) -> None:
    status, body = call(local, "PUT", "/v1/templates/receipt", {
        "subject": "Receipt {{ number }}", "html": "<p>Total {{ total }}</p>", "text": "Total {{ total }}",
    })  # fmt: skip
    assert status in (200, 201), body
    email = {
        "from": "Shop <orders@shop.example>",
        "to": "ann@example.org",
        "cc": ["bob@example.org"],
        "bcc": "audit@example.org",
        "replyTo": "help@shop.example",
        "subject": "Your invoice",
        "text": "Attached.",
        "html": "<p>Attached. <img src='cid:logo'></p>",
        "headers": {"X-Invoice": "7"},
        "tags": [{"name": "kind", "value": "invoice"}],
        "attachments": [
            {"filename": "invoice.pdf", "content": base64.b64encode(PDF).decode(), "contentType": "application/pdf"},
            {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "contentType": "image/png",
             "contentId": "logo"},
        ],
    }  # fmt: skip
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    results = resend_node(local, [
        {"method": "emails.send", "args": [email, {"idempotencyKey": "invoice-7"}]},
        {"method": "emails.send", "args": [email, {"idempotencyKey": "invoice-7"}]},
        {"method": "batch.send", "args": [[
            {"from": "orders@shop.example", "to": "dan@example.org", "subject": "B", "text": "b"},
            {"from": "orders@shop.example", "to": "carl@example.org",
             "template": {"id": "receipt", "variables": {"number": "7", "total": "9.90 €"}}},
        ]]},
        {"method": "emails.send", "args": [{"from": "orders@shop.example", "to": "fay@example.org",
                                            "subject": "Later", "text": "later", "scheduledAt": later}]},
    ])  # fmt: skip
    assert all(result["ok"] for result in results), results
    sent, again, batch, scheduled = (result["answer"] for result in results)
    assert again["id"] == sent["id"]  # the Idempotency-Key: one message
    record = wait_for_status(local, sent["id"], {"delivered"})
    assert record["metadata"] == {"kind": "invoice"}
    for row in batch["data"]:
        wait_for_status(local, row["id"], {"delivered"})
    # the scheduled one: read, rescheduled and cancelled through the SDK (Node's cancel sends no body)
    moved = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    got, updated, cancelled, after = (r for r in resend_node(local, [
        {"method": "emails.get", "args": [scheduled["id"]]},
        {"method": "emails.update", "args": [{"id": scheduled["id"], "scheduledAt": moved}]},
        {"method": "emails.cancel", "args": [scheduled["id"]]},
        {"method": "emails.get", "args": [scheduled["id"]]},
    ]))  # fmt: skip
    assert got["answer"]["last_event"] == "scheduled", got
    assert updated["answer"]["id"] == scheduled["id"], updated
    assert cancelled["answer"]["id"] == scheduled["id"], cancelled
    assert after["answer"]["last_event"] == "canceled", after
    # the MX got each message once, byte for byte
    by_rcpt = {tuple(sorted(e.rcpt_tos)): e for e in sink.messages}
    assert sum("ann@example.org" in e.rcpt_tos for e in sink.messages) == 1
    msg = message_from_bytes(by_rcpt[("ann@example.org", "audit@example.org", "bob@example.org")].content,
                             policy=policy.default)  # fmt: skip
    assert msg.defects == []
    assert msg["Cc"].addresses[0].addr_spec == "bob@example.org"
    assert msg["Bcc"] is None
    assert msg["Reply-To"].addresses[0].addr_spec == "help@shop.example"
    assert msg["X-Invoice"] == "7"
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["invoice.pdf"]["Content-ID"] is None
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"
    carl = message_from_bytes(by_rcpt[("carl@example.org",)].content, policy=policy.default)
    assert carl["Subject"] == "Receipt 7"
    assert carl.get_body(("plain",)).get_content().strip() == "Total 9.90 €"
    assert ("dan@example.org",) in by_rcpt
    assert not any("fay@example.org" in e.rcpt_tos for e in sink.messages)


def test_node_resend_errors_are_its_error_objects(local: LocalStack) -> None:
    status, body = call(local, "POST", "/v1/suppressions", {"address": "gone@example.org"})
    assert status in (200, 201), body
    message = {"from": "orders@shop.example", "subject": "Hi", "text": "Hi"}
    results = resend_node(local, [
        {"method": "emails.send", "token": "not-a-key", "args": [{**message, "to": "ann@example.org"}]},
        {"method": "emails.send", "args": [{**message, "to": "ann@@example.org"}]},
        {"method": "emails.send", "args": [{**message, "to": "gone@example.org"}]},
        {"method": "emails.send", "args": [{**message, "to": "ann@example.org", "topicId": "news"}]},
        {"method": "emails.get", "args": ["msg_00000000000000000000000000"]},
    ])  # fmt: skip
    errors = [result["error"] for result in results]
    assert [(e["name"], e["statusCode"]) for e in errors] == [
        ("invalid_api_key", 403),
        ("validation_error", 422),
        ("validation_error", 422),
        ("validation_error", 422),
        ("not_found", 404),
    ]
    assert "gone@example.org" in errors[2]["message"]
    assert "topic_id" in errors[3]["message"]
