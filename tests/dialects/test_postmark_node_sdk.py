"""Node's official ``postmark`` client (npm, installed by ``npm ci`` in tests/sdk/node from .ci/run) against the local
stack, pointed at it by its ``requestHost`` option (a host only: the Postmark routes live at the root).

The script tests/sdk/node/postmark.mjs makes the calls; this module checks the answers, the mail read back through
Postroom's API and the bytes the loopback MX received, and that errors are the SDK's own classes with Postmark's codes.
"""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from typing import Any

import pytest

from postroom.local.stack import LocalStack
from postroom.testing.smtp_peers import RecordingSink
from tests.dialects.node_sdk import run_node as run_sdk
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


def run_node(stack: LocalStack, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return run_sdk("postmark.mjs", "postmark", stack, calls)


def test_node_postmark_send_template_and_batch(local: LocalStack, sink: RecordingSink) -> None:
    status, body = call(local, "PUT", "/v1/templates/receipt", {
        "subject": "Receipt {{ number }}", "html": "<p>Total {{ total }}</p>", "text": "Total {{ total }}",
    })  # fmt: skip
    assert status in (200, 201), body
    message = {
        "From": "Shop <orders@shop.example>",
        "To": "ann@example.org",
        "Cc": "bob@example.org",
        "Bcc": "audit@example.org",
        "Subject": "Your invoice",
        "TextBody": "Attached.",
        "HtmlBody": "<p>Attached. <img src='cid:logo'></p>",
        "Headers": [{"Name": "X-Invoice", "Value": "7"}],
        "Tag": "invoice",
        "Metadata": {"invoice": "7"},
        "MessageStream": "outbound",
        "TrackLinks": "HtmlOnly",
        "Attachments": [
            {"Name": "invoice.pdf", "Content": base64.b64encode(PDF).decode(), "ContentType": "application/pdf"},
            {"Name": "logo.png", "Content": base64.b64encode(PNG).decode(), "ContentType": "image/png",
             "ContentID": "cid:logo"},
        ],
    }  # fmt: skip
    templated = {"TemplateAlias": "receipt", "TemplateModel": {"number": "7", "total": "9.90 €"},
                 "From": "orders@shop.example", "To": "carl@example.org"}  # fmt: skip
    results = run_node(local, [
        {"method": "sendEmail", "args": [message]},
        {"method": "sendEmailWithTemplate", "args": [templated]},
        {"method": "sendEmailBatch", "args": [[{"From": "orders@shop.example", "To": "dan@example.org",
                                                "Subject": "B", "TextBody": "b"}]]},
        {"method": "sendEmailBatchWithTemplates", "args": [[{**templated, "To": "eve@example.org"}]]},
    ])  # fmt: skip
    assert all(result["ok"] for result in results), results
    sent, receipt, batch, batch_templated = (result["answer"] for result in results)
    assert sent["ErrorCode"] == 0
    assert sent["To"] == "ann@example.org"
    record = wait_for_status(local, sent["MessageID"], {"delivered"})
    assert record["tags"] == ["invoice"]
    assert record["metadata"] == {"invoice": "7"}
    for answer in (receipt, batch[0], batch_templated[0]):
        assert answer["ErrorCode"] == 0
        wait_for_status(local, answer["MessageID"], {"delivered"})
    by_rcpt = {tuple(sorted(e.rcpt_tos)): e for e in sink.messages}
    envelope = by_rcpt[("ann@example.org", "audit@example.org", "bob@example.org")]
    msg = message_from_bytes(envelope.content, policy=policy.default)
    assert msg.defects == []
    assert msg["Cc"].addresses[0].addr_spec == "bob@example.org"
    assert msg["Bcc"] is None
    assert msg["X-Invoice"] == "7"
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF  # Node's ContentID: null - an ordinary attachment
    assert parts["invoice.pdf"]["Content-ID"] is None
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"
    carl = message_from_bytes(by_rcpt[("carl@example.org",)].content, policy=policy.default)
    assert carl["Subject"] == "Receipt 7"
    assert carl.get_body(("plain",)).get_content().strip() == "Total 9.90 €"
    assert ("dan@example.org",) in by_rcpt
    assert ("eve@example.org",) in by_rcpt


def test_node_postmark_errors_are_its_own_error_classes(local: LocalStack) -> None:
    status, body = call(local, "POST", "/v1/suppressions", {"address": "gone@example.org"})
    assert status in (200, 201), body
    message = {"From": "orders@shop.example", "Subject": "Hi", "TextBody": "Hi"}
    results = run_node(local, [
        {"method": "sendEmail", "token": "not-a-key", "args": [{**message, "To": "ann@example.org"}]},
        {"method": "sendEmail", "args": [{**message, "To": "ann@@example.org"}]},
        {"method": "sendEmail", "args": [{**message, "To": "gone@example.org"}]},
    ])  # fmt: skip
    errors = [result["error"] for result in results]
    assert [(e["name"], e["code"], e["statusCode"]) for e in errors] == [
        ("InvalidAPIKeyError", 10, 401),
        ("InvalidEmailRequestError", 300, 422),
        ("InactiveRecipientsError", 406, 422),
    ]
