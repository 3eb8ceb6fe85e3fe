"""POST /v1/messages and GET /v1/messages/{id} through the real send API handler, against moto."""

from __future__ import annotations

import base64
import json

import boto3

from postroom.core.auth import Scope
from tests.conftest import Stack, create_key

MESSAGE = {
    "from": "Shop <orders@shop.example>",
    "to": ["Ann <ann@example.org>"],
    "subject": "Your order",
    "text": "Thanks!",
}


def test_accepted_message_is_stored_and_queued_before_202(stack: Stack) -> None:
    # GIVEN a valid message  WHEN it is sent
    status, body = stack.request("POST", "/v1/messages", MESSAGE)
    # THEN 202 with an id, and the record, the body and a pointer exist (a small request also rides in the pointer, a
    # copy of S3's, so the worker's first attempt does not read it back: issue 21)
    assert status == 202, body
    assert body["status"] == "queued"
    msg_id = body["id"]
    obj = boto3.client("s3").get_object(
        Bucket=stack.resources["BodiesBucket"]["Ref"], Key=f"messages/{msg_id}/request.json"
    )
    stored = obj["Body"].read()
    assert json.loads(stored)["subject"] == "Your order"
    queued = stack.queue_messages()
    assert [json.loads(m["Body"]) for m in queued] == [{"v": 1, "id": msg_id, "request": stored.decode()}]
    status, record = stack.request("GET", f"/v1/messages/{msg_id}")
    assert status == 200
    assert record["status"] == "queued"
    assert record["recipients"][0]["address"] == "ann@example.org"
    assert record["recipients"][0]["status"] == "pending"


def test_large_attachment_travels_through_s3_not_sqs(stack: Stack) -> None:
    big = base64.b64encode(b"\0" * 400_000).decode()  # more than SQS's 256 KB once encoded
    status, body = stack.request(
        "POST", "/v1/messages", {**MESSAGE, "attachments": [{"filename": "a.bin", "content": big}]}
    )
    assert status == 202, body
    assert len(stack.queue_messages()[0]["Body"]) < 200


def test_missing_and_invalid_keys_are_401(stack: Stack) -> None:
    status, body = stack.request("POST", "/v1/messages", MESSAGE, key=None)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["field"] == "Authorization"
    status, body = stack.request("POST", "/v1/messages", MESSAGE, key="pr_not-a-real-key")
    assert status == 401
    # an unauthenticated caller gets 401 even with an invalid body: nothing is validated for strangers
    status, _ = stack.request("POST", "/v1/messages", {"nonsense": True}, key=None)
    assert status == 401
    assert stack.queue_messages() == []


def test_key_without_send_scope_is_403(stack: Stack) -> None:
    reader = create_key(frozenset({Scope.MESSAGES_READ}))
    status, body = stack.request("POST", "/v1/messages", MESSAGE, key=reader)
    assert status == 403
    assert "messages:send" in body["error"]["message"]


def test_unknown_sending_domain_is_refused_no_open_relay(stack: Stack) -> None:
    status, body = stack.request("POST", "/v1/messages", {**MESSAGE, "from": "someone@gmail.example"})
    assert status == 403
    assert body["error"] == {
        "code": "sender_not_allowed",
        "message": "'gmail.example' is not a sending domain of this Postroom stack; configure it in SendingDomains first",
        "field": "from",
    }
    assert stack.queue_messages() == []


def test_field_errors_are_422_naming_the_field(stack: Stack) -> None:
    cases = {
        "subject": {**MESSAGE, "subject": "Hi\r\nBcc: victim@example.org"},
        "headers": {**MESSAGE, "headers": {"X-Test": "a\r\nBcc: victim@example.org"}},
        "to[0]": {**MESSAGE, "to": ["Ann\r\n <ann@example.org>"]},
        "to[1]": {**MESSAGE, "to": ["ann@example.org", "bad@@example.org"]},
        "from": {**MESSAGE, "from": {"email": "orders@shop.example", "name": "X\nBcc: y@example.org"}},
        "attachments[0].content": {**MESSAGE, "attachments": [{"filename": "a", "content": "%%%"}]},
    }
    for field, body in cases.items():
        status, answer = stack.request("POST", "/v1/messages", body)
        assert status == 422, (field, answer)
        assert answer["error"]["code"] == "validation_error"
        assert answer["error"]["field"] == field, answer
    status, answer = stack.request("POST", "/v1/messages", {**MESSAGE, "to": [f"r{i}@example.org" for i in range(51)]})
    assert status == 422
    assert "51 recipients" in answer["error"]["message"]
    assert stack.queue_messages() == []


def test_malformed_json_is_400_and_non_json_is_415(stack: Stack) -> None:
    status, body = stack.request("POST", "/v1/messages", raw=b'{"from": ')
    assert status == 400
    assert body["error"]["code"] == "invalid_json"
    status, body = stack.request(
        "POST", "/v1/messages", raw=b"from=a", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"


def test_oversize_request_is_413(stack: Stack, monkeypatch) -> None:
    from postroom.wiring.services import reset_services

    monkeypatch.setenv("POSTROOM_MAX_REQUEST_BYTES", "100000")
    reset_services()
    big = base64.b64encode(b"x" * 100_000).decode()
    status, body = stack.request(
        "POST", "/v1/messages", {**MESSAGE, "attachments": [{"filename": "a", "content": big}]}
    )
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def test_estimated_message_size_over_the_ses_limit_is_413(stack: Stack, monkeypatch) -> None:
    from postroom.wiring.services import reset_services

    monkeypatch.setenv("POSTROOM_MAX_MESSAGE_BYTES", "50000")
    reset_services()
    big = base64.b64encode(b"x" * 60_000).decode()
    status, body = stack.request(
        "POST", "/v1/messages", {**MESSAGE, "attachments": [{"filename": "a", "content": big}]}
    )
    assert status == 413
    assert body["error"]["field"] == "attachments"


def test_other_tenants_message_is_404(stack: Stack) -> None:
    _, body = stack.request("POST", "/v1/messages", MESSAGE)
    stranger = create_key(tenant="other")
    status, answer = stack.request("GET", f"/v1/messages/{body['id']}", key=stranger)
    assert status == 404
    assert answer["error"]["code"] == "not_found"
    status, _ = stack.request("GET", "/v1/messages/msg_00000000000000000000000000")
    assert status == 404
