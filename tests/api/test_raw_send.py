"""POST /v1/messages/raw: a complete RFC 5322 message goes through the cleanup stage and the same accept path."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy

import boto3
import pytest

from tests.conftest import Stack

RAW = (
    b"From: Shop <orders@shop.example>\r\n"
    b"To: Ann <ann@example.org>\r\n"
    b"Bcc: audit@example.org\r\n"
    b"Subject: Raw order mail\r\n"
    b"X-Order: 42\r\n"
    b"\r\n"
    b"Hello from a raw message.\r\n"
)


def stored_mime(stack: Stack, msg_id: str) -> bytes:
    bucket = stack.resources["BodiesBucket"]["Ref"]
    return boto3.client("s3").get_object(Bucket=bucket, Key=f"messages/{msg_id}/message.eml")["Body"].read()


def send_json(stack: Stack, raw: bytes, **extra: object) -> tuple[int, dict]:
    return stack.request("POST", "/v1/messages/raw", {"raw": base64.b64encode(raw).decode(), **extra})


def test_raw_message_is_queued_with_envelope_from_headers_and_bcc_removed(stack: Stack) -> None:
    status, body = send_json(stack, RAW)
    assert status == 202, body
    _, record = stack.request("GET", f"/v1/messages/{body['id']}")
    assert [r["address"] for r in record["recipients"]] == ["ann@example.org", "audit@example.org"]
    assert record["from_address"] == "orders@shop.example"
    assert record["subject"] == "Raw order mail"
    mime = stored_mime(stack, body["id"])
    assert b"Bcc:" not in mime
    assert b"audit@example.org" not in mime
    # the submitted lines are kept byte for byte; Message-ID and Date are added on the sender's domain
    assert mime.startswith(b"From: Shop <orders@shop.example>\r\nTo: Ann <ann@example.org>\r\nSubject: Raw order mail")
    assert mime.endswith(b"\r\n\r\nHello from a raw message.\r\n")
    parsed = message_from_bytes(mime, policy=policy.default)
    assert parsed["Message-ID"] == record["message_id_header"]
    assert parsed["Message-ID"].endswith("@shop.example>")
    assert parsed["Date"]


def test_rfc822_body_with_explicit_envelope(stack: Stack) -> None:
    status, body = stack.request(
        "POST",
        "/v1/messages/raw",
        raw=RAW.replace(b"Bcc: audit@example.org\r\n", b"Message-ID: <given@shop.example>\r\n"),
        headers={"Content-Type": "message/rfc822"},
        query="mail_from=bounces%40shop.example&rcpt=one%40example.org&rcpt=two%40example.org&delivery=smtp",
    )
    assert status == 202, body
    _, record = stack.request("GET", f"/v1/messages/{body['id']}")
    assert record["from_address"] == "bounces@shop.example"
    assert [r["address"] for r in record["recipients"]] == ["one@example.org", "two@example.org"]
    assert record["delivery"] == "smtp"
    assert record["message_id_header"] == "<given@shop.example>"


def test_eight_bit_body_is_stored_seven_bit_clean_with_the_same_content(stack: Stack) -> None:
    raw = (
        b"From: orders@shop.example\r\nTo: ann@example.org\r\nSubject: Umlaut\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Grüße aus Köln — 你好\r\n".encode()
    )
    status, body = send_json(stack, raw)
    assert status == 202, body
    mime = stored_mime(stack, body["id"])
    assert mime.isascii()
    parsed = message_from_bytes(mime, policy=policy.default)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content().replace("\r\n", "\n") == "Grüße aus Köln — 你好\n"


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (RAW.replace(b"\r\n", b"\n"), "invalid_message", "bare LF"),
        (RAW.replace(b"X-Order: 42\r\n", b"X-Order 42\r\n"), "invalid_message", "malformed header line"),
        (RAW.replace(b"Subject:", b"From: x@shop.example\r\nSubject:"), "invalid_message", "2 From headers"),
        (RAW.replace(b"From: Shop <orders@shop.example>\r\n", b""), "invalid_message", "no From header"),
        (RAW.replace(b"orders@shop.example", b"ceo@bank.example"), "sender_not_allowed", "bank.example"),
        (
            RAW.replace(b"To: Ann <ann@example.org>\r\nBcc: audit@example.org\r\n", b""),
            "invalid_message",
            "no recipients",
        ),
        (RAW.replace(b"Subject: Raw", "Subject: Rüw".encode()), "invalid_message", "8-bit bytes"),
        (b"From: orders@shop.example\r\nTo: a@example.org\r\nSubject: x", "invalid_message", "no empty line"),
        (
            b"From: orders@shop.example\r\nTo: a@example.org\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nno end\r\n',
            "invalid_message",
            "CloseBoundaryNotFound",
        ),
    ],
)
def test_bad_raw_messages_get_a_clear_4xx(stack: Stack, raw: bytes, code: str, words: str) -> None:
    status, body = send_json(stack, raw)
    assert 400 <= status < 500, body
    assert body["error"]["code"] == code, body
    assert words in body["error"]["message"], body
    assert stack.queue_messages() == []


def test_raw_base64_and_envelope_errors(stack: Stack) -> None:
    status, body = stack.request("POST", "/v1/messages/raw", {"raw": "%%%"})
    assert status == 422
    assert body["error"]["field"] == "raw"
    status, body = send_json(stack, RAW, recipients=[f"r{i}@example.org" for i in range(51)])
    assert status == 422
    assert "51 recipients" in body["error"]["message"]
    status, body = send_json(stack, RAW, mail_from="x@elsewhere.example")
    assert status == 403
    status, body = stack.request("POST", "/v1/messages/raw", raw=RAW, headers={"Content-Type": "text/plain"})
    assert status == 415
    status, body = stack.request("POST", "/v1/messages/raw", {"raw": 1, "extra": True})
    assert status == 422
    assert body["error"]["code"] == "validation_error"
