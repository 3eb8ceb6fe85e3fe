"""POST /v1/messages/raw: a complete RFC 5322 message goes through the cleanup stage and the same accept path."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy

import boto3
import pytest

from tests.api.test_idempotency_batch import all_queued
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


def send_rfc822(stack: Stack, raw: bytes, query: str = "", key: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "message/rfc822", **({"Idempotency-Key": key} if key else {})}
    return stack.request("POST", "/v1/messages/raw", raw=raw, headers=headers, query=query)


def send_json_with_key(stack: Stack, raw: bytes, key: str, **extra: object) -> tuple[int, dict]:
    body = {"raw": base64.b64encode(raw).decode(), **extra}
    return stack.request("POST", "/v1/messages/raw", body, headers={"Idempotency-Key": key})


def assert_key_reused(status: int, body: dict) -> None:
    assert status == 409, body
    assert body["error"]["code"] == "idempotency_key_reused"
    assert body["error"]["field"] == "Idempotency-Key"
    assert "different request body" in body["error"]["message"]


def test_json_retry_with_idempotency_key_answers_the_first_id_and_queues_once(stack: Stack) -> None:
    # GIVEN a raw JSON submission with an Idempotency-Key  WHEN the client retries it with the same key and body
    first = send_json_with_key(stack, RAW, "raw-order-42")
    second = send_json_with_key(stack, RAW, "raw-order-42")
    # THEN the retry answers the first response and only one message was queued
    assert first[0] == 202, first
    assert second == first
    assert all_queued(stack) == [first[1]["id"]]
    # WHEN the same key comes with another message, or the same message with another envelope  THEN 409, nothing queued
    assert_key_reused(*send_json_with_key(stack, RAW.replace(b"X-Order: 42", b"X-Order: 43"), "raw-order-42"))
    assert_key_reused(*send_json_with_key(stack, RAW, "raw-order-42", recipients=["ann@example.org"]))
    assert_key_reused(*send_json_with_key(stack, RAW, "raw-order-42", delivery="smtp"))
    assert all_queued(stack) == []


def test_rfc822_retry_with_idempotency_key_answers_the_first_id_and_queues_once(stack: Stack) -> None:
    query = "rcpt=one%40example.org&rcpt=two%40example.org"
    first = send_rfc822(stack, RAW, query, key="eml-1")
    second = send_rfc822(stack, RAW, query, key="eml-1")
    assert first[0] == 202, first
    assert second == first
    assert all_queued(stack) == [first[1]["id"]]
    # the envelope in the query string is part of the request: another recipient list or sender is another request
    assert_key_reused(*send_rfc822(stack, RAW, "rcpt=one%40example.org", key="eml-1"))
    assert_key_reused(*send_rfc822(stack, RAW, query + "&mail_from=bounces%40shop.example", key="eml-1"))
    assert_key_reused(*send_rfc822(stack, RAW + b"P.S.\r\n", query, key="eml-1"))
    assert all_queued(stack) == []
    # and a refused request is not remembered: the key still answers the first message
    assert send_rfc822(stack, RAW, query, key="eml-1") == first


def test_idempotency_on_raw_is_per_message_bytes_not_per_form_and_keeps_no_mime(stack: Stack) -> None:
    # GIVEN a message sent as message/rfc822 with a key  WHEN the same bytes and envelope come again as JSON
    first = send_rfc822(stack, RAW, key="either-form")
    again = send_json_with_key(stack, RAW, "either-form")
    # THEN it is the same request (the fingerprint is over the decoded message, not the request's encoding)
    assert first[0] == 202, first
    assert again == first
    assert all_queued(stack) == [first[1]["id"]]
    # and the idempotency record holds a digest of the message, never the message itself
    items = boto3.client("dynamodb").scan(TableName=stack.resources["IdempotencyTable"]["Ref"])["Items"]
    raw_records = [item for item in items if item["id"]["S"].startswith("raw")]
    assert len(raw_records) == 1
    stored = repr(raw_records[0])
    assert "Raw order mail" not in stored
    assert base64.b64encode(RAW).decode()[:40] not in stored
    # the same key on another route is another key: scopes never meet
    assert (
        stack.request(
            "POST",
            "/v1/messages",
            {"from": "orders@shop.example", "to": "a@example.org", "subject": "x", "text": "y"},
            headers={"Idempotency-Key": "either-form"},
        )[0]
        == 202
    )
