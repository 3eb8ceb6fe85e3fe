"""Large attachments: ``POST /v1/uploads`` hands out a presigned S3 POST; a send names the upload; the worker reads it
into the message. Where the message is larger than the recipient MX advertises (SIZE) or than a per-domain limit, the
largest attachments become expiring links, the text says so, and the record and events report it. The 30 MB case goes
end to end: upload over HTTP, send, delivery to a 10 MB MX, the file fetched back through the link."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services
from tests.events.conftest import EventsStack

MX_SIZE = 10 * 1024 * 1024


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    """The recipient's MX advertises SIZE 10 MB (aiosmtpd refuses larger messages with 552)."""
    with RecordingSink(data_size_limit=MX_SIZE) as server:
        yield server


@pytest.fixture
def links_on(monkeypatch: pytest.MonkeyPatch, events_stack: EventsStack) -> EventsStack:
    monkeypatch.setenv("POSTROOM_ATTACHMENT_LINKS", "true")
    reset_services()
    return events_stack


def upload(events_stack: EventsStack, filename: str, data: bytes, content_type: str) -> str:
    status, answer = events_stack.call(
        "POST", "/v1/uploads", {"filename": filename, "size": len(data), "content_type": content_type}
    )
    assert status == 201, answer
    form = answer["upload"]
    response = requests.post(form["url"], data=form["fields"], files={"file": (filename, data)}, timeout=60)
    assert response.status_code in (200, 201, 204), response.text[:500]
    return str(answer["id"])


def received(sink: RecordingSink) -> EmailMessage:
    [message] = sink.messages
    parsed = message_from_bytes(message.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_30_mb_upload_reaches_a_10_mb_mx_as_a_link_that_returns_the_file(
    links_on: EventsStack, sink: RecordingSink
) -> None:
    events_stack = links_on
    # GIVEN a 30 MB file uploaded through the presigned POST, and a small one sent inline
    data = os.urandom(30 * 1024 * 1024)
    upload_id = upload(events_stack, "dataset.bin", data, "application/octet-stream")
    body = {
        "from": "orders@smtp.example",
        "to": ["ann@example.org"],
        "subject": "The data",
        "text": "Here it is.",
        "attachments": [
            {"filename": "dataset.bin", "upload_id": upload_id},
            {"filename": "notes.txt", "content": "aGVsbG8K"},
        ],
    }
    # WHEN it is sent (a small request) and delivered to an MX whose SIZE is 10 MB
    msg_id = events_stack.send(body)
    events_stack.deliver()
    # THEN the MX took a message under its SIZE, the big file as a link in the text, the small one still attached
    parsed = received(sink)
    assert len(sink.messages[0].content) < MX_SIZE
    assert [part.get_filename() for part in parsed.iter_attachments()] == ["notes.txt"]
    text = parsed.get_body(("plain",))
    assert isinstance(text, EmailMessage)
    content = text.get_content()
    assert content.startswith("Here it is.")
    assert "too large for the recipient's mail server" in content
    [url] = re.findall(r"dataset\.bin \(30\.0 MB\): (\S+)", content)
    html = parsed.get_body(("html",))
    assert html is None  # a text-only message gets no HTML part
    # AND the link returns the very file
    fetched = requests.get(url, timeout=60)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).digest() == hashlib.sha256(data).digest()
    # AND the record and the delivered event say what went as a link
    record = events_stack.record(msg_id)
    assert record["status"] == "delivered"
    assert record["recipients"][0]["attachments_linked"] == f"dataset.bin ({len(data)} bytes)"
    timeline = events_stack.timeline(msg_id)
    [delivered] = [e for e in timeline["data"] if e["type"] == "delivered"]
    assert delivered["details"]["attachments_linked"].startswith("dataset.bin")


def test_without_links_an_upload_is_attached_whole(events_stack: EventsStack, sink: RecordingSink) -> None:
    # GIVEN the default (links off) and a 2 MB upload, well under the MX's SIZE
    data = os.urandom(2 * 1024 * 1024)
    upload_id = upload(events_stack, "photo.jpg", data, "image/jpeg")
    body: dict[str, Any] = {
        "from": "orders@smtp.example",
        "to": ["ann@example.org"],
        "subject": "Photo",
        "text": "See attached.",
        "attachments": [{"filename": "photo.jpg", "upload_id": upload_id}],
    }
    events_stack.send(body)
    events_stack.deliver()
    # THEN the file arrives as an ordinary attachment with the upload's type, byte for byte
    [part] = list(received(sink).iter_attachments())
    assert part.get_content_type() == "image/jpeg"
    assert part.get_payload(decode=True) == data


def test_a_per_domain_limit_links_without_asking_the_mx(
    links_on: EventsStack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTROOM_ATTACHMENT_LINK_LIMITS", "example.org=60000")
    reset_services()
    attachment = {"filename": "big.pdf", "content": "QUJD" * 20000}  # 60 000 bytes decoded
    body = {"from": "orders@smtp.example", "to": ["ann@example.org"], "subject": "s", "html": "<p>Hi</p>"}
    events_stack = links_on
    events_stack.send({**body, "attachments": [attachment]})
    events_stack.deliver()
    parsed = received(sink)
    assert list(parsed.iter_attachments()) == []
    html = parsed.get_body(("html",))
    assert isinstance(html, EmailMessage)
    assert "big.pdf</a>" in html.get_content()


def test_uploads_refuse_what_ses_refuses_and_unknown_ids(events_stack: EventsStack) -> None:
    status, answer = events_stack.call("POST", "/v1/uploads", {"filename": "setup.exe", "size": 10})
    assert status == 422
    assert answer["error"]["field"] == "filename"
    status, answer = events_stack.call("POST", "/v1/uploads", {"filename": "huge.bin", "size": 50 * 1024 * 1024})
    assert status == 413
    body = {
        "from": "orders@smtp.example",
        "to": ["ann@example.org"],
        "subject": "s",
        "text": "t",
        "attachments": [{"filename": "x.pdf", "upload_id": "upl_01m8vjq133ndx0evb0yht6vqx8"}],
    }
    status, answer = events_stack.call("POST", "/v1/messages", body)
    assert status == 422
    assert "does not exist" in answer["error"]["message"]
