"""The local stack's journal in front of moto (postroom.local.durable), through boto3 against a real moto server:
what a restart replays, what it must not bring back, and what a kill mid-write leaves."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from postroom.local.durable import Journal, MotoServer, ReplayReport, StateLockedError

pytestmark = pytest.mark.e2e

REGION = "us-east-1"


class Emulation:
    """One run of the emulation on a state directory, started as the local stack starts it: reset, then replay."""

    def __init__(self, state: Path) -> None:
        self.server = MotoServer(journal=Journal(state))
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        reset = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=10):
            pass
        report = self.server.replay()
        assert report is not None
        self.report: ReplayReport = report

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def appended(self) -> int:
        assert self.server.journal is not None
        return self.server.journal.appended

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    return tmp_path / "state"


def test_restart_keeps_undeleted_messages_with_their_ids_and_never_resurrects_deleted_ones(state: Path) -> None:
    # GIVEN a queue with four messages, all received (in flight), two deleted one by one and one in a batch
    first = Emulation(state)
    sqs = first.client("sqs")
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    sent = [sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")["MessageId"] for i in range(4)]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 4
    by_body = {m["Body"]: m for m in received}
    sqs.delete_message(QueueUrl=url, ReceiptHandle=by_body["m0"]["ReceiptHandle"])
    sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": by_body[b]["ReceiptHandle"]} for i, b in enumerate(["m1", "m2"])],
    )
    first.stop()

    # WHEN the emulation starts again on the same state
    second = Emulation(state)
    try:
        sqs = second.client("sqs")
        again: list[dict[str, Any]] = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
            again += batch  # received ones stay hidden for the queue's 600 s, so this ends
        # THEN only the undeleted message is there, visible at once (its consumer died), with its original id
        assert [(m["Body"], m["MessageId"]) for m in again] == [("m3", sent[3])]
    finally:
        second.stop()


def test_a_snapshot_holds_the_queue_and_the_journal_only_what_came_after(state: Path) -> None:
    # GIVEN a queued message, and a start that replayed it and took a snapshot
    first = Emulation(state)
    sqs = first.client("sqs")
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    kept = sqs.send_message(QueueUrl=url, MessageBody="kept")["MessageId"]
    first.stop()
    second = Emulation(state)
    assert second.report.records == 2
    later = second.client("sqs").send_message(QueueUrl=url, MessageBody="later")["MessageId"]
    # ... and a clean stop in the middle of a batch: both messages held by a consumer for ten minutes
    held = second.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
    assert len(held["Messages"]) == 2
    second.server.checkpoint()
    second.stop()
    # WHEN the emulation starts again
    third = Emulation(state)
    try:
        # THEN it has both messages from the snapshot, with their ids, visible at once (their consumer is gone)
        assert third.report.records == 0
        sqs = third.client("sqs")
        found: dict[str, str] = {}
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
            found |= {m["Body"]: m["MessageId"] for m in batch}
        assert found == {"kept": kept, "later": later}
        assert kept != later
    finally:
        third.stop()


def test_reads_receives_and_refused_writes_are_not_journaled(state: Path) -> None:
    emulation = Emulation(state)
    try:
        ddb = emulation.client("dynamodb")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})
        sqs = emulation.client("sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        written = emulation.appended
        # WHEN the stack only reads, receives from an empty queue, and has a conditional write refused
        ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})
        ddb.scan(TableName="t")
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        with pytest.raises(ClientError):
            ddb.put_item(TableName="t", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
        # THEN the journal did not grow
        assert emulation.appended == written
    finally:
        emulation.stop()


def test_a_record_cut_short_by_a_kill_is_dropped_and_the_journal_stays_usable(state: Path) -> None:
    # GIVEN a journal holding a table and an item, whose last write was cut off mid-line
    first = Emulation(state)
    ddb = first.client("dynamodb")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item={"pk": {"S": "kept"}})
    first.stop()
    with (state / "journal.log").open("ab") as journal:
        journal.write(b'{"seq":99,"environ":{"REQUEST_METH')

    # WHEN the emulation starts again, writes, and starts once more
    second = Emulation(state)
    assert second.report.torn_tail_bytes > 0
    second.client("dynamodb").put_item(TableName="t", Item={"pk": {"S": "after"}})
    second.stop()
    third = Emulation(state)
    try:
        # THEN every acknowledged write is there, the torn one is gone for good
        items = third.client("dynamodb").scan(TableName="t")["Items"]
        assert sorted(item["pk"]["S"] for item in items) == ["after", "kept"]
        assert third.report.torn_tail_bytes == 0
    finally:
        third.stop()


def test_a_second_stack_on_the_same_state_is_refused(state: Path) -> None:
    journal = Journal(state)
    try:
        with pytest.raises(StateLockedError):
            Journal(state)
    finally:
        journal.close()
