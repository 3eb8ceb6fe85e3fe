"""SendGrid's Python SDK (``sendgrid``, from PyPI) against the local stack, pointed at it by its ``host`` option.

Each personalization is its own message: read back through Postroom's own API by the ids in ``X-Postroom-Message-Ids``
(``X-Message-Id`` is the first) and from the loopback MX sink, byte-checked. The error path checks the SDK's own
``python_http_client`` exceptions with SendGrid's status and ``errors`` body. The SDK's helper drops a malformed
address before sending, so the invalid-address case goes as a raw body through the same client.
"""

from __future__ import annotations

import base64
import json
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from python_http_client.exceptions import BadRequestsError, ForbiddenError, UnauthorizedError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    Category,
    ContentId,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    Header,
    Mail,
    Personalization,
    ReplyTo,
    SendAt,
    Substitution,
    To,
)
from sendgrid.helpers.mail import Bcc as BccAddress
from sendgrid.helpers.mail import Cc as CcAddress

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


def client(stack: LocalStack, token: str | None = None) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=token or stack.api_key, host=stack.api_url)


def header(response: Any, name: str) -> str:  # python_http_client's Response
    return {k.lower(): v for k, v in response.headers.items()}[name.lower()]


def delivered(sink: RecordingSink, recipient: str) -> tuple[list[str], EmailMessage]:
    for envelope in sink.messages:
        if recipient in envelope.rcpt_tos:
            parsed = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            assert parsed.defects == []
            return sorted(envelope.rcpt_tos), parsed
    raise AssertionError(f"nothing delivered to {recipient}")


def test_sendgrid_personalizations_are_messages_byte_for_byte(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN a Mail with two personalizations (each with its own substitutions and custom args), attachments,
    # categories, a reply-to and a header
    mail = Mail(from_email=("orders@shop.example", "Shop"), subject="Order -order- ✓")
    mail.add_content("Thanks -name-, order -order-.", "text/plain")
    mail.add_content("<p>Thanks -name-! <img src='cid:logo'></p>", "text/html")
    first = Personalization()
    first.add_to(To("ann@example.org", "Ann"))
    first.add_cc(CcAddress("carl@example.org"))
    first.add_bcc(BccAddress("audit@example.org"))
    first.add_substitution(Substitution("-name-", "Ann"))
    first.add_substitution(Substitution("-order-", "1001"))
    first.add_custom_arg(CustomArg("order", "1001"))
    second = Personalization()
    second.add_to(To("bob@example.org"))
    second.add_substitution(Substitution("-name-", "Bob"))
    second.add_substitution(Substitution("-order-", "1002"))
    second.add_custom_arg(CustomArg("order", "1002"))
    mail.add_personalization(first, index=0)
    mail.add_personalization(second, index=1)  # the helper inserts at index 0 unless told
    mail.reply_to = ReplyTo("help@shop.example")
    mail.add_header(Header("X-Shop", "main"))
    mail.add_category(Category("order-confirmation"))
    mail.add_custom_arg(CustomArg("shop", "main"))
    mail.add_attachment(Attachment(FileContent(base64.b64encode(PDF).decode()), FileName("invoice.pdf"),
                                   FileType("application/pdf"), Disposition("attachment")))  # fmt: skip
    mail.add_attachment(Attachment(FileContent(base64.b64encode(PNG).decode()), FileName("logo.png"),
                                   FileType("image/png"), Disposition("inline"), ContentId("logo")))  # fmt: skip
    # WHEN the SDK sends it
    response = client(local).send(mail)
    # THEN SendGrid's 202 with X-Message-Id, and one Postroom message per personalization
    assert response.status_code == 202
    ids = header(response, "X-Postroom-Message-Ids").split(",")
    assert len(ids) == 2
    assert header(response, "X-Message-Id") == ids[0]
    ann_record = wait_for_status(local, ids[0], {"delivered"})
    bob_record = wait_for_status(local, ids[1], {"delivered"})
    assert ann_record["tags"] == ["order-confirmation"]
    assert ann_record["metadata"] == {"shop": "main", "order": "1001"}
    assert bob_record["metadata"] == {"shop": "main", "order": "1002"}
    rcpts, ann = delivered(sink, "ann@example.org")
    assert rcpts == ["ann@example.org", "audit@example.org", "carl@example.org"]
    assert ann["Subject"] == "Order 1001 ✓"
    assert ann["To"].addresses[0].display_name == "Ann"
    assert ann["Bcc"] is None
    assert ann["Reply-To"].addresses[0].addr_spec == "help@shop.example"
    assert ann["X-Shop"] == "main"
    assert ann.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Thanks Ann, order 1001.\n"
    assert "<p>Thanks Ann! <img src='cid:logo'></p>" in ann.get_body(("html",)).get_content()
    parts = {part.get_filename(): part for part in ann.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["invoice.pdf"]["Content-ID"] is None
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"
    rcpts, bob = delivered(sink, "bob@example.org")
    assert rcpts == ["bob@example.org"]
    assert bob["Subject"] == "Order 1002 ✓"
    assert bob.get_body(("plain",)).get_content().strip() == "Thanks Bob, order 1002."


def test_sendgrid_template_and_send_at(local: LocalStack, sink: RecordingSink) -> None:
    status, body = call(local, "PUT", "/v1/templates/welcome", {
        "subject": "Welcome, {{ name }}", "html": "<p>Hello {{ name }}</p>", "text": "Hello {{ name }}",
    })  # fmt: skip
    assert status in (200, 201), body
    # a dynamic template (template_id: a Postroom stored template's name, dynamic_template_data: its variables)
    mail = Mail(from_email="orders@shop.example", to_emails="dan@example.org")
    mail.template_id = "welcome"
    mail.dynamic_template_data = {"name": "Dan"}
    response = client(local).send(mail)
    assert response.status_code == 202
    wait_for_status(local, header(response, "X-Message-Id"), {"delivered"})
    _, dan = delivered(sink, "dan@example.org")
    assert dan["Subject"] == "Welcome, Dan"
    assert dan.get_body(("plain",)).get_content().strip() == "Hello Dan"
    # send_at (a Unix time) holds the message
    later = Mail(from_email="orders@shop.example", to_emails="fay@example.org", subject="Later",
                 plain_text_content="later")  # fmt: skip
    later.send_at = SendAt(int(time.time()) + 86400)
    response = client(local).send(later)
    assert response.status_code == 202
    _, record = call(local, "GET", f"/v1/messages/{header(response, 'X-Message-Id')}")
    assert record["status"] == "scheduled"


def test_sendgrid_errors_are_the_sdks_own_exceptions(local: LocalStack) -> None:
    # a bad key: 401 → UnauthorizedError
    with pytest.raises(UnauthorizedError) as bad_key:
        client(local, token="not-a-key").send(
            Mail("orders@shop.example", "ann@example.org", "Hi", plain_text_content="Hi")
        )
    assert bad_key.value.status_code == 401
    assert json.loads(bad_key.value.body)["errors"][0]["message"]
    # an invalid address (raw body through the same client: the helper would drop it): 400 naming SendGrid's field
    raw = {"personalizations": [{"to": [{"email": "ann@@example.org"}]}], "from": {"email": "orders@shop.example"},
           "subject": "Hi", "content": [{"type": "text/plain", "value": "Hi"}]}  # fmt: skip
    with pytest.raises(BadRequestsError) as invalid:
        client(local).client.mail.send.post(request_body=raw)
    assert invalid.value.status_code == 400
    error = json.loads(invalid.value.body)["errors"][0]
    assert error["field"] == "personalizations.0.to.0.email", error
    # a suppressed recipient (and no other): 400
    status, body = call(local, "POST", "/v1/suppressions", {"address": "gone@example.org"})
    assert status in (200, 201), body
    with pytest.raises(BadRequestsError) as suppressed:
        client(local).send(Mail("orders@shop.example", "gone@example.org", "Hi", plain_text_content="Hi"))
    assert "gone@example.org" in json.loads(suppressed.value.body)["errors"][0]["message"]
    # a sender outside the key's domains: 403
    with pytest.raises(ForbiddenError):
        client(local).send(Mail("someone@elsewhere.example", "ann@example.org", "Hi", plain_text_content="Hi"))
    # fields Postroom cannot honour are refused, not ignored
    for extra, field in (
        ({"asm": {"group_id": 1}}, "asm"),
        ({"mail_settings": {"sandbox_mode": {"enable": True}}}, "mail_settings"),
        ({"tracking_settings": {"click_tracking": {"enable": True, "enable_text": True}}},
         "tracking_settings.click_tracking.enable_text"),
        ({"content": [{"type": "text/calendar", "value": "x"}]}, "content.0.type"),
    ):  # fmt: skip
        with pytest.raises(BadRequestsError) as refused:
            client(local).client.mail.send.post(request_body={**raw, "personalizations": [
                {"to": [{"email": "ann@example.org"}]}], **extra})  # fmt: skip
        assert json.loads(refused.value.body)["errors"][0]["field"] == field
