"""Postmark's Python SDK (postmarker, from PyPI) against the local stack, pointed at it by its ``root_api_url``.

Each message the SDK sends is read back through Postroom's own API (``GET /v1/messages/{MessageID}``) and from the
loopback MX sink, and its bytes are compared with what was sent. The error path checks that postmarker raises its own
``ClientError`` with Postmark's ``error_code`` (it raises ``KeyError('ErrorCode')`` on any other error body).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from postmarker.core import PostmarkClient
from postmarker.exceptions import ClientError

from postroom.local.stack import LocalStack
from postroom.testing.smtp_peers import RecordingSink
from tests.e2e.test_local_stack import PDF, PNG, call, wait_for_status

pytestmark = pytest.mark.e2e


# One stack and one MX sink for the module (see tests/dialects/conftest.py); each test that reads the sink mails
# recipients no other test here uses, and waits for its mail to be delivered, so none reads another's.
@pytest.fixture(autouse=True)
def _clean_aws_env(shared_local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``shared_local`` cleaned the environment once for this module."""


@pytest.fixture
def local(shared_local: LocalStack) -> LocalStack:
    return shared_local


@pytest.fixture
def sink(shared_sink: RecordingSink) -> RecordingSink:
    return shared_sink


def client(stack: LocalStack, token: str | None = None) -> PostmarkClient:
    # root_api_url is postmarker's documented base-URL option; it joins "/email" onto the host's root.
    return PostmarkClient(server_token=token or stack.api_key, root_api_url=stack.api_url + "/")


def delivered(sink: RecordingSink, recipient: str) -> tuple[list[str], EmailMessage]:
    for envelope in sink.messages:
        if recipient in envelope.rcpt_tos:
            parsed = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            assert parsed.defects == []
            return sorted(envelope.rcpt_tos), parsed
    raise AssertionError(f"nothing delivered to {recipient}")


def test_postmarker_send_reaches_the_mx_byte_for_byte(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN postmarker with To/Cc as its comma-joined strings, a Bcc, headers, a PDF and an inline image (cid:)
    answer = client(local).emails.send(
        From="Shop <orders@shop.example>",
        To="Ann <ann@example.org>, bob@example.org",
        Cc='"Doe, Carl" <carl@example.org>',
        Bcc="audit@example.org",
        ReplyTo="help@shop.example",
        Subject="Order #1001 ✓",
        TextBody="Thanks for your order.",
        HtmlBody="<p>Thanks! <img src='cid:logo.png'></p>",
        Headers={"X-Order-Id": "1001"},
        Tag="order-confirmation",
        Metadata={"order": "1001"},
        TrackOpens=False,
        Attachments=[
            {"Name": "invoice.pdf", "Content": base64.b64encode(PDF).decode(), "ContentType": "application/pdf"},
            {
                "Name": "logo.png",
                "Content": base64.b64encode(PNG).decode(),
                "ContentType": "image/png",
                "ContentID": "cid:logo.png",
            },
        ],
    )
    # THEN Postmark's answer shape, with Postroom's id as MessageID
    assert answer["ErrorCode"] == 0
    assert answer["Message"] == "OK"
    assert answer["To"] == "Ann <ann@example.org>, bob@example.org"
    assert answer["SubmittedAt"]
    record = wait_for_status(local, answer["MessageID"], {"delivered"})
    assert record["tags"] == ["order-confirmation"]
    assert record["metadata"] == {"order": "1001"}
    assert sorted(r["address"] for r in record["recipients"]) == [
        "ann@example.org",
        "audit@example.org",
        "bob@example.org",
        "carl@example.org",
    ]
    # and the MX got exactly that message
    rcpts, msg = delivered(sink, "ann@example.org")
    assert rcpts == ["ann@example.org", "audit@example.org", "bob@example.org", "carl@example.org"]
    assert msg["Subject"] == "Order #1001 ✓"
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@example.org", "bob@example.org"]
    assert msg["Cc"].addresses[0].display_name == "Doe, Carl"
    assert msg["Bcc"] is None
    assert msg["Reply-To"].addresses[0].addr_spec == "help@shop.example"
    assert msg["X-Order-Id"] == "1001"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Thanks for your order.\n"
    assert "<img src='cid:logo.png'>" in msg.get_body(("html",)).get_content()
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo.png>"  # the "cid:" prefix postmarker adds is not part of it


def test_postmarker_template_and_batches(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN a stored template
    status, body = call(local, "PUT", "/v1/templates/welcome", {
        "subject": "Welcome, {{ name }}", "html": "<p>Hello {{ name }}</p>", "text": "Hello {{ name }}",
    })  # fmt: skip
    assert status in (200, 201), body
    pm = client(local)
    # WHEN postmarker sends it by alias (its trailing-slash route, TemplateId: null beside TemplateAlias)
    answer = pm.emails.send_with_template(
        TemplateAlias="welcome", TemplateModel={"name": "Ann"}, From="orders@shop.example", To="amy@example.org",
        Tag="welcome",
    )  # fmt: skip
    assert answer["ErrorCode"] == 0
    # and a batch of two plain messages and a batch of one templated message
    batch = pm.emails.send_batch(
        {"From": "orders@shop.example", "To": "ben@example.org", "Subject": "One", "TextBody": "1"},
        {"From": "orders@shop.example", "To": "not an address", "Subject": "Two", "TextBody": "2"},
    )
    templated = pm.emails.send_template_batch(
        {"TemplateAlias": "welcome", "TemplateModel": {"name": "Carl"}, "From": "orders@shop.example",
         "To": "cid@example.org"},
    )  # fmt: skip
    # THEN each row is answered on its own, in order
    assert [row["ErrorCode"] for row in batch] == [0, 300]
    assert "To" in batch[1]["Message"]
    assert templated[0]["ErrorCode"] == 0
    for msg_id in (answer["MessageID"], batch[0]["MessageID"], templated[0]["MessageID"]):
        wait_for_status(local, msg_id, {"delivered"})
    _, welcome = delivered(sink, "amy@example.org")
    assert welcome["Subject"] == "Welcome, Ann"
    assert welcome.get_body(("plain",)).get_content().strip() == "Hello Ann"
    _, carl = delivered(sink, "cid@example.org")
    assert carl["Subject"] == "Welcome, Carl"
    _, one = delivered(sink, "ben@example.org")
    assert one["Subject"] == "One"


def test_postmarker_errors_are_its_client_error_with_postmark_codes(local: LocalStack) -> None:
    message = {"From": "orders@shop.example", "Subject": "Hi", "TextBody": "Hi"}
    # a bad token: 10
    with pytest.raises(ClientError) as bad_token:
        client(local, token="not-a-key").emails.send(To="ann@example.org", **message)
    assert bad_token.value.error_code == 10
    # an invalid address: 300
    with pytest.raises(ClientError) as invalid:
        client(local).emails.send(To="ann@@example.org", **message)
    assert invalid.value.error_code == 300
    # a suppressed recipient (and no other): 406, inactive recipient
    status, body = call(local, "POST", "/v1/suppressions", {"address": "gone@example.org"})
    assert status in (200, 201), body
    with pytest.raises(ClientError) as inactive:
        client(local).emails.send(To="gone@example.org", **message)
    assert inactive.value.error_code == 406
    assert "gone@example.org" in str(inactive.value)
    # a field Postroom cannot honour is refused, not ignored
    with pytest.raises(ClientError) as text_links:
        client(local).emails.send(To="ann@example.org", TrackLinks="TextOnly", **message)
    assert text_links.value.error_code == 300
    assert "TrackLinks" in str(text_links.value)


def test_partly_suppressed_message_is_accepted_with_postmarks_notice(local: LocalStack, sink: RecordingSink) -> None:
    status, body = call(local, "POST", "/v1/suppressions", {"address": "gone@example.org"})
    assert status in (200, 201), body
    answer = client(local).emails.send(
        From="orders@shop.example", To="gone@example.org, ada@example.org", Subject="Hi", TextBody="Hi"
    )
    assert answer["ErrorCode"] == 0
    assert answer["Message"] == "Message OK, but will not deliver to these inactive addresses: gone@example.org"
    record = wait_for_status(local, answer["MessageID"], {"delivered", "partially_delivered", "partial"}, timeout=20)
    assert {r["address"]: r["status"] for r in record["recipients"]}["gone@example.org"] == "suppressed"
    rcpts, _ = delivered(sink, "ada@example.org")
    assert rcpts == ["ada@example.org"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", "/email", {}, 405, 300),
        ("POST", "/email/nowhere", {"Content-Type": "application/json"}, 404, 300),
        ("POST", "/email", {"Content-Type": "text/plain"}, 422, 409),
        ("POST", "/email", {"Content-Type": "application/json", "X-Postmark-Server-Token": ""}, 401, 10),
    ],
)
def test_every_postmark_route_answer_carries_error_code(
    local: LocalStack, method: str, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    # postmarker reads data["ErrorCode"] from every error body, so 404/405/415 must carry Postmark's shape too
    sent = {"X-Postmark-Server-Token": local.api_key, **headers}
    request = urllib.request.Request(
        local.api_url + path, method=method, data=b"{}" if method == "POST" else None, headers=sent
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == status
    body = json.loads(error.value.read())
    assert body["ErrorCode"] == code
    assert body["Message"]
