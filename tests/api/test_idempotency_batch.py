"""Idempotency-Key on send and batch, and POST /v1/messages/batch, through the real send API handler against moto."""

from __future__ import annotations

import json
import time

import boto3

from tests.conftest import Stack, create_key

MESSAGE = {"from": "Shop <orders@shop.example>", "to": ["ann@example.org"], "subject": "Your order", "text": "Thanks!"}


def all_queued(stack: Stack) -> list[str]:
    ids: list[str] = []
    while batch := stack.queue_messages():
        ids += [json.loads(m["Body"])["id"] for m in batch]
    return ids


def queue_depth(stack: Stack) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources["DeliveryQueue"]["Ref"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def send(stack: Stack, body: dict, key: str | None, api_key: str = "default") -> tuple[int, dict]:
    headers = {"Idempotency-Key": key} if key else {}
    return stack.request("POST", "/v1/messages", body, headers=headers, key=api_key)


def test_same_key_same_body_creates_one_message(stack: Stack) -> None:
    # GIVEN a send with an Idempotency-Key  WHEN the client retries it twice with the same key and body
    first = send(stack, MESSAGE, "order-1001-confirmation")
    second = send(stack, MESSAGE, "order-1001-confirmation")
    third = stack.request("POST", "/v1/messages", MESSAGE, headers={"idempotency-key": "order-1001-confirmation"})
    # THEN every answer is the first one, and one message exists
    assert first[0] == 202
    assert first == second == third
    assert all_queued(stack) == [first[1]["id"]]


def test_same_key_different_body_is_409(stack: Stack) -> None:
    send(stack, MESSAGE, "k-1")
    status, body = send(stack, {**MESSAGE, "subject": "Something else"}, "k-1")
    assert status == 409
    assert body["error"]["code"] == "idempotency_key_reused"
    assert body["error"]["field"] == "Idempotency-Key"
    assert "different request body" in body["error"]["message"]
    assert len(all_queued(stack)) == 1


def test_keys_are_per_tenant_and_refused_requests_are_not_remembered(stack: Stack) -> None:
    # GIVEN two tenants using the same key  THEN each gets its own message
    other = create_key(tenant="other")
    assert send(stack, MESSAGE, "shared")[1]["id"] != send(stack, MESSAGE, "shared", api_key=other)[1]["id"]
    # GIVEN a request refused for its sender  WHEN it is corrected and retried with the same key  THEN it is accepted
    status, _ = send(stack, {**MESSAGE, "from": "x@elsewhere.example"}, "fix-me")
    assert status == 403
    status, _ = send(stack, MESSAGE, "fix-me")
    assert status == 202


def test_replayed_answer_says_so(stack: Stack) -> None:
    from postroom.local.gateway import build_event

    event = lambda: build_event(  # noqa: E731
        method="POST",
        path="/v1/messages",
        resource="/v1/messages",
        query="",
        headers=[
            ("Authorization", f"Bearer {stack.api_key}"),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "abc"),
        ],
        body=json.dumps(MESSAGE).encode(),
        source_ip="127.0.0.1",
        path_parameters={},
        stage="api",
    )
    first = stack.send_api.invoke(event())
    second = stack.send_api.invoke(event())
    assert "Idempotent-Replayed" not in first["multiValueHeaders"]
    assert second["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert second["multiValueHeaders"]["Location"] == first["multiValueHeaders"]["Location"]


def test_bad_key_is_422(stack: Stack) -> None:
    status, body = send(stack, MESSAGE, " " * 3 + "x\u00e9")
    assert status == 422
    assert body["error"]["field"] == "Idempotency-Key"


def test_batch_of_500_returns_500_rows_in_order_and_a_bad_row_fails_alone(stack: Stack) -> None:
    # GIVEN 500 messages, two of them bad (row 7 invalid, row 300 from a foreign domain)
    rows = [{**MESSAGE, "subject": f"Order {i}", "to": [f"c{i}@example.org"]} for i in range(500)]
    rows[7] = {**MESSAGE, "to": ["not an address"]}
    rows[300] = {**MESSAGE, "from": "someone@elsewhere.example"}
    # WHEN they are sent as one batch
    started = time.perf_counter()
    status, body = stack.request("POST", "/v1/messages/batch", {"messages": rows})
    elapsed = time.perf_counter() - started
    # THEN 500 rows come back in request order: ids for the good ones, errors for the bad ones
    assert status == 200, body
    results = body["results"]
    assert [r["index"] for r in results] == list(range(500))
    assert (body["accepted"], body["rejected"]) == (498, 2)
    assert results[7]["status"] == 422
    assert results[7]["error"]["field"] == "to[0]"
    assert results[300]["error"]["code"] == "sender_not_allowed"
    good = [r for r in results if "id" in r]
    assert all(r["status"] == "queued" for r in good)
    # and every accepted message is queued (draining 498 pointers from moto would take longer than the batch itself)
    assert len({r["id"] for r in good}) == 498
    assert queue_depth(stack) == 498
    status, record = stack.request("GET", f"/v1/messages/{results[499]['id']}")
    assert (status, record["subject"], record["recipients"][0]["address"]) == (200, "Order 499", "c499@example.org")
    print(f"batch of 500 accepted in {elapsed:.2f} s ({elapsed / 500 * 1000:.1f} ms per message, moto in-process)")


def test_batch_limits_and_idempotency(stack: Stack) -> None:
    status, body = stack.request("POST", "/v1/messages/batch", {"messages": [MESSAGE] * 501})
    assert status == 422
    assert body["error"]["field"] == "messages"
    assert stack.request("POST", "/v1/messages/batch", {"messages": []})[0] == 422
    batch = {"messages": [MESSAGE, {"from": "orders@shop.example", "to": "a@example.org", "template": "welcome"}]}
    first = stack.request("POST", "/v1/messages/batch", batch, headers={"Idempotency-Key": "b-1"})
    again = stack.request("POST", "/v1/messages/batch", batch, headers={"Idempotency-Key": "b-1"})
    assert first == again
    assert first[1]["results"][1]["error"]["code"] == "not_found"
    assert len(all_queued(stack)) == 1
    assert (
        stack.request("POST", "/v1/messages/batch", {"messages": [MESSAGE]}, headers={"Idempotency-Key": "b-1"})[0]
        == 409
    )
