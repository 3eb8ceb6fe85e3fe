"""A raw RFC 5322 message through the local stack reaches the MX exactly as stored (Bcc removed, ids added)."""

from __future__ import annotations

import base64

import pytest

from postroom.local.stack import LocalStack
from postroom.testing.smtp_peers import RecordingSink
from tests.e2e.test_local_stack import call, stored_mime, wait_for_status

pytestmark = pytest.mark.e2e


def test_raw_message_is_delivered_as_stored(local: LocalStack, sink: RecordingSink) -> None:
    raw = (
        b"From: Shop <orders@shop.example>\r\nTo: ann@example.org\r\nBcc: audit@example.org\r\n"
        b"Subject: raw e2e\r\nMessage-ID: <raw-e2e@shop.example>\r\n\r\n.leading dot line\r\nbody\r\n"
    )
    status, body = call(local, "POST", "/v1/messages/raw", {"raw": base64.b64encode(raw).decode()})
    assert status == 202, body
    record = wait_for_status(local, body["id"], {"delivered"})
    assert len(sink.messages) == 1
    received = sink.messages[0]
    assert sorted(received.rcpt_tos) == ["ann@example.org", "audit@example.org"]
    assert received.content == stored_mime(local, body["id"])
    assert b"Bcc" not in received.content
    assert b"\r\n.leading dot line\r\n" in received.content  # dot-stuffing undone by the receiver: same bytes
    assert record["message_id_header"] == "<raw-e2e@shop.example>"
