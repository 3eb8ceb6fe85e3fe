"""Event writes never drop an event: throttling and cancelled transactions are retried, and what still fails is parked
on the events queue with its reason and recorded from there. Faults are injected as real DynamoDB error responses
at botocore's ``before-send`` hook, so botocore's own parsing and retry logic handle them as they would on AWS."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto.server import ThreadedMotoServer

from postroom.core import aws
from postroom.core.clock import now_iso
from postroom.core.dynamo import to_item
from postroom.core.message_record import MessageRecord, RecipientState
from postroom.core.status import MessageStatus, RecipientStatus
from postroom.events.event_model import Event, EventType, new_event_id
from postroom.events.event_store import FEED_SHARDS, EventStore
from postroom.events.observer import EventObserver
from postroom.events.parking import EventParking, parked, record_parked
from postroom.events.recorder import EventRecorder
from postroom.local.template import load_template
from postroom.suppression.suppression_store import SuppressionStore

TABLE = "events-test"
ROOT = Path(__file__).resolve().parents[2]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class Faults:
    """Answers the next ``count`` calls of ``operation`` with a DynamoDB error, as the service would."""

    def __init__(self, client: Any) -> None:
        self.left: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.injected: Counter[str] = Counter()
        client.meta.events.register("before-send.dynamodb", self._send)

    def fail(self, operation: str, count: int, error: str, **fields: Any) -> None:
        self.left[operation] = count
        self.bodies[operation] = {"__type": f"com.amazonaws.dynamodb.v20120810#{error}", "message": error, **fields}

    def _send(self, request: Any, **_: Any) -> AWSResponse | None:
        operation = request.headers.get("X-Amz-Target", b"").decode().rsplit(".", 1)[-1]
        if self.left[operation] <= 0:
            return None
        self.left[operation] -= 1
        self.injected[operation] += 1
        body = json.dumps(self.bodies[operation]).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(body))


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # moto's server on loopback rather than its in-process mock: the mock answers inside botocore's ``before-send``
    # as well, and would apply a write whose answer the fault replaced.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    # moto's backends live in the process: start from empty ones, whatever an earlier test left
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")).close()
    for name, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
    ):
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    client = aws.client("dynamodb")  # the production client: its retry configuration is under test too
    props = load_template(ROOT / "template.yaml")["Resources"]["Table"]["Properties"]
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=[
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in props["GlobalSecondaryIndexes"]
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield client
    finally:
        aws.reset_clients()
        server.stop()


def _event(message_id: str = "msg_00000000000000000000000001") -> Event:
    return Event(
        id=new_event_id(),
        type=EventType.DELIVERED,
        message_id=message_id,
        recipient="ann@example.org",
        occurred_at=now_iso(),
        recorded_at=now_iso(),
        source="smtp",
    )


def _feed(store: EventStore, tenant: str = "t1") -> list[str]:
    page = store.feed(tenant, after=None, limit=500, until_ms=2**47)
    return [event.id for event in page.events]


def test_a_throttled_event_write_is_retried_and_stored_once(dynamodb: Any) -> None:
    # GIVEN a table that throttles the next four writes (one fewer than the client's five tries: max_attempts=4
    # counts retries)
    faults = Faults(dynamodb)
    faults.fail("PutItem", 4, "ThrottlingException")
    store = EventStore(dynamodb, TABLE)
    event = _event()
    # WHEN an event is recorded
    recorded = store.record(event, tenant="t1", key="k1")
    # THEN it was stored, after the throttled tries, exactly once
    assert faults.injected["PutItem"] == 4
    assert recorded.new
    assert _feed(store) == [event.id]
    assert store.timeline(event.message_id) == [event]


def test_a_transaction_cancelled_for_a_conflict_is_retried(dynamodb: Any) -> None:
    # GIVEN a message item that the event's transaction updates, and two cancellations for a conflict on it
    dynamodb.put_item(TableName=TABLE, Item=to_item({"pk": "MSG#msg_00000000000000000000000001", "sk": "MSG", "n": 0}))
    faults = Faults(dynamodb)
    reasons = [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
    faults.fail("TransactWriteItems", 2, "TransactionCanceledException", CancellationReasons=reasons)
    store = EventStore(dynamodb, TABLE)
    event = _event()
    also = [
        {
            "Update": {
                "TableName": TABLE,
                "Key": to_item({"pk": f"MSG#{event.message_id}", "sk": "MSG"}),
                "UpdateExpression": "SET n = n + :one",
                "ExpressionAttributeValues": to_item({":one": 1}),
            }
        }
    ]
    # WHEN the event is recorded with its message update
    recorded = store.record(event, tenant="t1", key="k1", also=also)
    # THEN both happened once, after the cancelled tries
    assert faults.injected["TransactWriteItems"] == 2
    assert recorded.new
    assert _feed(store) == [event.id]
    message = dynamodb.get_item(TableName=TABLE, Key=to_item({"pk": f"MSG#{event.message_id}", "sk": "MSG"}))
    assert message["Item"]["n"] == {"N": "1"}


def _failed_message() -> MessageRecord:
    """A message the worker gave up on: its one recipient gets a ``failed`` event."""
    return MessageRecord(
        id="msg_00000000000000000000000007",
        tenant="t1",
        status=MessageStatus.FAILED,
        from_address="a@example.com",
        subject="s",
        delivery="smtp",
        message_id_header="<x@example.com>",
        recipients=[RecipientState(address="ann@example.org", status=RecipientStatus.FAILED, final_at=now_iso())],
        reason="too many attempts",
        created_at=now_iso(),
        updated_at=now_iso(),
    )


def test_events_that_still_fail_are_parked_and_recorded_from_the_queue(dynamodb: Any) -> None:
    # GIVEN a table that throttles all of the client's five tries, and the events queue to park on
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    faults = Faults(dynamodb)
    faults.fail("PutItem", 5, "ProvisionedThroughputExceededException")
    store = EventStore(dynamodb, TABLE)
    recorder = EventRecorder(events=store, suppressions=SuppressionStore(dynamodb, TABLE))
    observer = EventObserver(recorder, EventParking(sqs, queue_url))
    # WHEN the worker's observer is told the message failed
    observer.attempted(_failed_message(), [])
    # THEN nothing is stored yet, and the event waits on the queue with its reason
    assert faults.injected["PutItem"] == 5
    assert _feed(store) == []
    (message,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert json.loads(message["Body"])["reason"].startswith("ProvisionedThroughputExceededException")
    found = parked(message["Body"])
    assert found is not None
    (pending,) = found[1]
    assert (pending.event.type, pending.key) == (
        EventType.FAILED,
        "failed:msg_00000000000000000000000007:ann@example.org",
    )
    # AND WHEN the events function takes it, with the table healthy again, it is recorded under its own key, once
    assert record_parked(recorder, message["Body"]) == 1
    assert _feed(store) == [pending.event.id]
    assert not store.record(pending.event, tenant="t1", key=pending.key).new


def test_the_feed_reads_each_shard_once_whatever_the_cursor(dynamodb: Any) -> None:
    # GIVEN 300 events of one tenant (and one of another) spread over the shards
    store = EventStore(dynamodb, TABLE)
    ids = sorted(store.record(_event(f"msg_{n:026d}"), tenant="t1", key=str(n)).event.id for n in range(300))
    store.record(_event(), tenant="t2", key="x")
    calls: Counter[str] = Counter()
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    # WHEN it is read in pages of 70, from no cursor to the end
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.feed("t1", after=cursor, limit=70, until_ms=2**47)
        pages += 1
        seen += [event.id for event in page.events]
        cursor = page.next_cursor
        if not page.has_more:
            break
    # THEN every event came once, in order, and each page cost one Query per shard
    assert seen == ids
    assert calls["Query"] == pages * FEED_SHARDS
