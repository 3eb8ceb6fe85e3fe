"""Inbound mail end to end through the local stack: a real SMTP client talks to the loopback listener that plays SES,
the same inbound handler files the message, and the mailbox API serves it over HTTP - bodies, raw source and
attachments byte for byte, keywords, moves and the change log. Internal delivery goes from the send API to an own
domain's mailbox."""

from __future__ import annotations

import json
import smtplib
import time
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from postroom.local.stack import LocalStack, StackConfig
from postroom.wiring.services import reset_services
from postroom.wiring.worker_batch import reset_resolver
from tests.conftest import clean_aws_env
from tests.e2e.test_local_stack import call

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 300
CSV = b"sku;qty\r\nA-1;2\r\n"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack for the module (starting one costs 15-20 s under load). Each test files mail under addresses no
    other test here uses (support@, desk@ through the catch-all, team@), so none sees another's mail."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_aws_env(monkeypatch)
        reset_services()
        reset_resolver()
        monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
        monkeypatch.setenv("POSTROOM_RETRY_BASE_SECONDS", "0")
        config = StackConfig(
            api_port=0,
            outbox=tmp_path_factory.mktemp("outbox"),
            poll_wait_seconds=1,
            parameters={
                "SendingDomains": "shop.example",
                "InboundDomains": "shop.example,help.example",
                "InboundCatchAll": "help.example=desk",
            },
        )
        stack = LocalStack(config).start()
        yield stack
        stack.stop()


@pytest.fixture(autouse=True)
def _clean_aws_env(local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``local`` cleaned the environment once for this module and then set the
    stack's settings there, which its pollers and handlers read between and during tests."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def download(stack: LocalStack, path: str) -> tuple[bytes, str]:
    """Follow the API's 302 to the presigned S3 URL, as ``curl -L`` does."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(stack.api_url + path, headers={"Authorization": f"Bearer {stack.api_key}"})
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=10)
    assert redirect.value.code == 302
    location = redirect.value.headers["Location"]
    assert json.loads(redirect.value.read())["url"] == location
    with urllib.request.urlopen(location, timeout=10) as response:
        return response.read(), response.headers.get("Content-Disposition", "")


def send_smtp(stack: LocalStack, message: EmailMessage, to: list[str]) -> None:
    with smtplib.SMTP(stack.inbound.host, stack.inbound.port, timeout=10) as client:
        client.ehlo("client.example.org")
        client.send_message(message, from_addr="ann@example.org", to_addrs=to)


def test_mail_sent_over_smtp_is_readable_byte_for_byte_and_syncable(local: LocalStack) -> None:
    # GIVEN a registered address
    status, created = call(local, "POST", "/v1/addresses", {"address": "support@shop.example"})
    assert status == 201, created
    # WHEN a real SMTP client sends a message with text, HTML and two attachments to it (plus-addressed)
    message = EmailMessage()
    message["From"] = "Ann Example <ann@example.org>"
    message["To"] = "support+ticket-7@shop.example"
    message["Subject"] = "Bestellung Nr. 7 – Rückfrage ✓"
    message["Message-ID"] = "<q7@example.org>"
    message.set_content("Hallo,\nwo bleibt meine Bestellung?\n")
    message.add_alternative("<p>Hallo, <b>wo bleibt</b> meine Bestellung?</p>", subtype="html")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="Rechnung 7.pdf")
    message.add_attachment(CSV, maintype="text", subtype="csv", filename="items.csv")
    sent = message.as_bytes(policy=policy.SMTP)
    send_smtp(local, message, ["support+ticket-7@shop.example"])
    # THEN the Inbox lists it with its headers
    status, page = call(local, "GET", "/v1/mailboxes/support@shop.example:inbox/messages")
    assert status == 200, page
    (listed,) = page["messages"]
    assert listed["subject"] == "Bestellung Nr. 7 – Rückfrage ✓"
    assert listed["from"] == [{"name": "Ann Example", "email": "ann@example.org"}]
    assert listed["tag"] == "ticket-7"
    assert listed["message_id"] == "<q7@example.org>"
    assert listed["has_attachments"] is True
    assert listed["origin"] == "local"
    state = page["state"]
    # and the message reads back with both bodies and the attachment list
    status, mail = call(local, "GET", f"/v1/mail/{listed['id']}")
    assert status == 200
    assert mail["text"] == "Hallo,\nwo bleibt meine Bestellung?\n"
    assert mail["html"].strip() == "<p>Hallo, <b>wo bleibt</b> meine Bestellung?</p>"
    assert [(a["filename"], a["size"]) for a in mail["attachments"]] == [
        ("Rechnung 7.pdf", len(PDF)),
        ("items.csv", len(CSV)),
    ]
    # and the attachments and the raw source download byte for byte
    pdf, disposition = download(local, mail["attachments"][0]["url"])
    assert pdf == PDF
    assert "Rechnung%207.pdf" in disposition
    assert download(local, mail["attachments"][1]["url"])[0] == CSV
    raw, _ = download(local, mail["raw_url"])
    assert raw.endswith(sent)  # as sent, after the Return-Path and Received lines the receiving side adds
    assert raw.startswith(b"Return-Path: <ann@example.org>\r\nReceived: from client.example.org")
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == listed["subject"]
    # WHEN it is marked seen and moved to Archive
    status, seen = call(local, "PATCH", f"/v1/mail/{listed['id']}", {"keywords": {"$seen": True}})
    assert status == 200
    assert seen["keywords"] == ["$seen"]
    status, moved = call(local, "PATCH", f"/v1/mail/{listed['id']}", {"mailbox": "support@shop.example:archive"})
    assert status == 200
    assert moved["mailbox"] == "support@shop.example:archive"
    # THEN a client syncing from the state it listed learns exactly that
    status, delta = call(local, "GET", f"/v1/mailboxes/support@shop.example:inbox/changes?since={state}")
    assert status == 200
    assert (delta["created"], delta["updated"], delta["destroyed"]) == ([], [], [listed["id"]])
    status, boxes = call(local, "GET", "/v1/mailboxes?address=support@shop.example")
    counts = {m["name"]: (m["total"], m["unread"]) for m in boxes["mailboxes"]}
    assert counts == {
        "Inbox": (0, 0),
        "Drafts": (0, 0),
        "Sent": (0, 0),
        "Junk": (0, 0),
        "Archive": (1, 0),
        "Trash": (0, 0),
    }


def test_unknown_recipients_are_refused_at_rcpt_or_caught(local: LocalStack) -> None:
    message = EmailMessage()
    message["From"] = "ann@example.org"
    message["Subject"] = "anyone there?"
    message.set_content("hello")
    # GIVEN shop.example has no catch-all: an unregistered address and a foreign domain are refused at RCPT
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_smtp(local, message, ["nobody@shop.example"])
    assert refused.value.recipients["nobody@shop.example"][0] == 550
    assert b"5.1.1" in refused.value.recipients["nobody@shop.example"][1]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as relay:
        send_smtp(local, message, ["someone@elsewhere.example"])
    assert b"5.7.1" in relay.value.recipients["someone@elsewhere.example"][1]
    # and help.example's catch-all takes anything
    send_smtp(local, message, ["whoever@help.example"])
    status, page = call(local, "GET", "/v1/mailboxes/desk@help.example:inbox/messages")
    assert status == 200
    assert [(m["recipient"], "catch_all" in m["flags"]) for m in page["messages"]] == [("whoever@help.example", True)]


def test_send_api_to_an_own_domain_is_filed_internally(local: LocalStack) -> None:
    call(local, "POST", "/v1/addresses", {"address": "team@shop.example"})
    # WHEN the send API is asked to mail an own address, an unknown own address and an outside one
    status, accepted = call(
        local,
        "POST",
        "/v1/messages",
        {
            "from": "Shop <orders@shop.example>",
            "to": ["team@shop.example", "ghost@shop.example", "ann@example.org"],
            "subject": "Internal note",
            "text": "Please check order 7.",
        },
    )
    assert status == 202, accepted
    deadline = time.monotonic() + 20
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, record = call(local, "GET", f"/v1/messages/{accepted['id']}")
        if record["status"] not in ("queued", "sending"):
            break
        time.sleep(0.1)
    # THEN team@ got it through internal delivery, ghost@ bounced, ann@ went out over SMTP
    by_address = {r["address"]: r for r in record["recipients"]}
    assert by_address["team@shop.example"]["status"] == "delivered"
    assert by_address["team@shop.example"]["delivery"] == "internal"
    assert by_address["ghost@shop.example"]["status"] == "bounced"
    assert by_address["ghost@shop.example"]["enhanced_status"] == "5.1.1"
    assert by_address["ann@example.org"]["delivery"] == "smtp"
    assert record["status"] == "partially_delivered"
    _, page = call(local, "GET", "/v1/mailboxes/team@shop.example:inbox/messages")
    (filed,) = page["messages"]
    assert (filed["subject"], filed["origin"], filed["from"][0]["email"]) == (
        "Internal note",
        "internal",
        "orders@shop.example",
    )
    _, mail = call(local, "GET", f"/v1/mail/{filed['id']}")
    assert mail["text"].strip() == "Please check order 7."
    assert mail["message_id"] == record["message_id_header"]
