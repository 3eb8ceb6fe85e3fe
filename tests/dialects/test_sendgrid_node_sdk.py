"""Node's official ``@sendgrid/mail`` (npm, tests/sdk/node) against the local stack: its base URL set with
``client.setDefaultRequest('baseUrl', …)`` after ``setApiKey`` (which resets it). The script tests/sdk/node/sendgrid.mjs
makes the calls; this module checks the answers, the mail read back through Postroom's API and the bytes the loopback
MX received, and the SDK's ``ResponseError`` with SendGrid's status and ``errors`` body.
"""

from __future__ import annotations

import base64
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


def sendgrid_node(stack: LocalStack, calls: list[dict]) -> list[dict]:
    return run_node("sendgrid.mjs", "@sendgrid/mail", stack, calls)


def test_node_sendgrid_send_template_and_substitutions(local: LocalStack, sink: RecordingSink) -> None:
    status, body = call(local, "PUT", "/v1/templates/d-receipt", {
        "subject": "Receipt {{ number }}", "html": "<p>Total {{ total }}</p>", "text": "Total {{ total }}",
    })  # fmt: skip
    assert status in (200, 201), body
    mail = {
        "from": {"email": "orders@shop.example", "name": "Shop"},
        "replyToList": [{"email": "help@shop.example"}, {"email": "billing@shop.example"}],
        "subject": "Invoice for {{name}}",
        "text": "Hello {{name}}, attached.",
        "html": "<p>Hello {{name}} <img src='cid:logo'></p>",
        "personalizations": [
            {"to": "ann@example.org", "cc": "bob@example.org", "bcc": "audit@example.org",
             "substitutions": {"name": "Ann"}, "customArgs": {"invoice": "7"}},
        ],
        "headers": {"X-Invoice": "7"},
        "categories": ["invoice"],
        "attachments": [
            {"filename": "invoice.pdf", "content": base64.b64encode(PDF).decode(), "type": "application/pdf",
             "disposition": "attachment"},
            {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "type": "image/png",
             "disposition": "inline", "content_id": "logo"},  # the helper passes attachments through as given
        ],
    }  # fmt: skip
    # The helper sends dynamicTemplateData only for a dynamic template's id (d-…): the stored template is named so.
    templated = {"from": "orders@shop.example", "to": "carl@example.org", "templateId": "d-receipt",
                 "dynamicTemplateData": {"number": "7", "total": "9.90 €"}}  # fmt: skip
    results = sendgrid_node(local, [{"mail": mail}, {"mail": templated}])
    assert all(result["ok"] for result in results), results
    assert [result["status"] for result in results] == [202, 202]
    sent, receipt = (result["headers"]["x-message-id"] for result in results)
    record = wait_for_status(local, sent, {"delivered"})
    assert record["tags"] == ["invoice"]
    assert record["metadata"] == {"invoice": "7"}
    wait_for_status(local, receipt, {"delivered"})
    by_rcpt = {tuple(sorted(e.rcpt_tos)): e for e in sink.messages}
    msg = message_from_bytes(by_rcpt[("ann@example.org", "audit@example.org", "bob@example.org")].content,
                             policy=policy.default)  # fmt: skip
    assert msg.defects == []
    assert msg["Subject"] == "Invoice for Ann"
    assert msg["Cc"].addresses[0].addr_spec == "bob@example.org"
    assert msg["Bcc"] is None
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == ["help@shop.example", "billing@shop.example"]
    assert msg["X-Invoice"] == "7"
    assert msg.get_body(("plain",)).get_content().strip() == "Hello Ann, attached."
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["invoice.pdf"]["Content-ID"] is None
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"
    carl = message_from_bytes(by_rcpt[("carl@example.org",)].content, policy=policy.default)
    assert carl["Subject"] == "Receipt 7"
    assert carl.get_body(("plain",)).get_content().strip() == "Total 9.90 €"


def test_node_sendgrid_errors_are_its_response_errors(local: LocalStack) -> None:
    status, body = call(local, "POST", "/v1/suppressions", {"address": "gone@example.org"})
    assert status in (200, 201), body
    message = {"from": "orders@shop.example", "subject": "Hi", "text": "Hi"}
    raw = {"personalizations": [{"to": [{"email": "ann@@example.org"}]}], "from": {"email": "orders@shop.example"},
           "subject": "Hi", "content": [{"type": "text/plain", "value": "Hi"}]}  # fmt: skip
    results = sendgrid_node(local, [
        {"token": "not-a-key", "mail": {**message, "to": "ann@example.org"}},
        {"raw": raw},
        {"mail": {**message, "to": "gone@example.org"}},
        {"mail": {**message, "to": "ann@example.org", "asm": {"groupId": 1}}},
    ])  # fmt: skip
    errors = [result["error"] for result in results]
    assert all(e["name"] == "ResponseError" for e in errors), errors
    assert [e["code"] for e in errors] == [401, 400, 400, 400]
    fields = [e["body"]["errors"][0]["field"] for e in errors]
    assert fields[1:] == ["personalizations.0.to.0.email", "personalizations.0.to", "asm"]
    assert "gone@example.org" in errors[2]["body"]["errors"][0]["message"]
