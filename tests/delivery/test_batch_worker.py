"""A batch is a batch (issue 21): the worker's AWS calls for a batch of 10 are counted with botocore's hooks, and the
batched writes keep the guarantees - a crash between the sink's 250 and the batch's save of its results sends nothing
twice, a record changed meanwhile fails alone (real worker handler, moto, loopback DNS and SMTP)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from postroom.core import aws
from postroom.core.message_store import MessageStore
from postroom.core.status import RecipientStatus
from postroom.local.poller import build_sqs_event
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services, services
from postroom.wiring.worker_batch import reset_resolver
from tests.conftest import Stack


class WorkerKilledError(BaseException):
    """The execution environment died: no handler code runs after this (not an Exception, so nothing catches it)."""


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@pytest.fixture
def smtp_stack(stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with LoopbackDnsServer(catch_all_mx="127.0.0.1") as dns:
        monkeypatch.setenv("POSTROOM_DNS_NAMESERVERS", f"127.0.0.1:{dns.port}")
        monkeypatch.setenv("POSTROOM_SMTP_PORT", str(sink.port))
        monkeypatch.setenv("POSTROOM_SMTP_TIMEOUT", "2")
        monkeypatch.setenv("POSTROOM_DEFAULT_DELIVERY", "smtp")
        reset_services()
        reset_resolver()
        yield stack


def send(stack: Stack, count: int, recipients: int = 1, *, name: str = "buyer") -> list[str]:
    ids = []
    for i in range(count):
        to = [f"{name}{i}-{k}@example.org" for k in range(recipients)]
        status, body = stack.request(
            "POST", "/v1/messages", {"from": "orders@smtp.example", "to": to, "subject": f"Order {i}", "text": "x"}
        )
        assert status == 202, body
        ids.append(body["id"])
    return ids


def queued(stack: Stack, count: int) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        batch = sqs.receive_message(
            QueueUrl=stack.resources["DeliveryQueue"]["Ref"], MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        assert batch, f"{len(messages)} of {count} queued"
        messages += batch
    return messages


def invoke(stack: Stack, messages: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = stack.worker.invoke(
        build_sqs_event(messages, stack.resources["DeliveryQueue"]["Arn"], "us-east-1")
    )
    return result


def count_calls() -> Counter[str]:
    """Every API call of the worker's clients from now on (botocore's before-parameter-build hook)."""
    calls: Counter[str] = Counter()

    def hook(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    for service in ("dynamodb", "s3", "sqs"):
        aws.client(service).meta.events.register("before-parameter-build", hook)
    return calls


def received(sink: RecordingSink) -> Counter[str]:
    return Counter(recipient for message in sink.messages for recipient in message.rcpt_tos)


def statuses(ids: list[str]) -> list[str]:
    return [services().messages.get(message_id).status.value for message_id in ids]


def test_a_batch_of_ten_to_one_domain_costs_at_most_three_aws_calls_a_message(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (pacing on, with room: at 10/s a batch starting in the second the warm-up used takes its slots one by one, and
    # the count would depend on the clock)
    monkeypatch.setenv("POSTROOM_DOMAIN_RATE_PER_SECOND", "1000")
    reset_services()
    # GIVEN one warm batch (an execution environment's first batch reads its caches: MTA-STS, the SES rate)
    send(smtp_stack, 1, name="warm")
    invoke(smtp_stack, queued(smtp_stack, 1))
    # AND ten queued messages to one domain
    ids = send(smtp_stack, 10)
    messages = queued(smtp_stack, 10)
    counting = count_calls()
    # WHEN the worker gets them as one batch
    assert invoke(smtp_stack, messages) == {"batchItemFailures": []}
    calls = Counter(counting)  # the invocation's calls only (the checks below read the table too)
    # THEN each is delivered once, with its events, for at most 30 AWS calls in all (it was 120)
    assert statuses(ids) == ["delivered"] * 10
    assert all(received(sink)[f"buyer{i}-0@example.org"] == 1 for i in range(10))
    assert [[e.type.value for e in services_events(i)] for i in ids] == [["delivered"]] * 10
    assert sum(calls.values()) <= 30, calls
    # and the per-message calls of before are gone: one read of the records, one write per save of the batch
    assert calls["GetItem"] == 0, calls
    assert calls["BatchGetItem"] <= 2, calls  # the records, the suppression list
    assert calls["PutItem"] == 0, calls


def services_events(message_id: str) -> list[Any]:
    from postroom.wiring.event_services import event_services

    return event_services().events.timeline(message_id)


def test_a_crash_between_the_sinks_250_and_the_batch_save_sends_nothing_twice(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ten queued messages and a worker killed when it saves the batch's results (after every 250)
    ids = send(smtp_stack, 10)
    messages = queued(smtp_stack, 10)
    real = MessageStore.save_many
    killed: list[int] = []

    def save_many(self: MessageStore, records: list[Any]) -> list[Exception | None]:
        if not killed and any(r.status.value != "sending" for r in records):
            killed.append(len(records))
            raise WorkerKilledError("killed before the batch's results were saved")
        return real(self, records)

    monkeypatch.setattr(MessageStore, "save_many", save_many)
    with pytest.raises(WorkerKilledError):
        invoke(smtp_stack, messages)
    assert killed == [10]
    assert statuses(ids) == ["sending"] * 10
    # WHEN SQS hands the whole batch over again
    assert invoke(smtp_stack, messages) == {"batchItemFailures": []}
    # THEN every message is delivered, each recipient got it exactly once (the send guard's stored results)
    assert statuses(ids) == ["delivered"] * 10
    assert sorted(received(sink).values()) == [1] * 10


def test_a_crash_between_the_sinks_250_and_the_guards_write_of_its_result_is_at_least_once(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two queued messages and a worker killed right after the first message's 250, before the guard stores it:
    # the one window the worker cannot close (RFC 1047); the batch's claim does not widen it to other messages
    from postroom.core.idempotency import Once

    ids = send(smtp_stack, 2)
    messages = queued(smtp_stack, 2)
    real = Once.complete
    killed: list[str] = []

    def complete(self: Once, key: str, result: Any) -> None:
        if not killed:
            killed.append(key)
            raise WorkerKilledError("killed before the result was stored")
        real(self, key, result)

    monkeypatch.setattr(Once, "complete", complete)
    # (the invocation's claims last as long as its remaining time: none here, as if SQS's visibility timeout - longer
    # than the function's - had passed before the redelivery, as it has on AWS)
    monkeypatch.setattr("postroom.local.handlers.LocalLambdaContext.get_remaining_time_in_millis", lambda self: 0)
    with pytest.raises(WorkerKilledError):
        invoke(smtp_stack, messages)
    assert len(sink.messages) == 1
    # WHEN the batch comes back
    monkeypatch.setattr(Once, "complete", real)
    assert invoke(smtp_stack, messages) == {"batchItemFailures": []}
    # THEN both end delivered; only the message of the window was sent twice, the other once
    assert statuses(ids) == ["delivered", "delivered"]
    assert sorted(received(sink).values()) == [1, 2]


def test_a_record_changed_meanwhile_fails_alone_and_the_rest_of_the_batch_is_delivered(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three queued messages, one of which another writer updates between the batch's read and its claim
    ids = send(smtp_stack, 3)
    messages = queued(smtp_stack, 3)
    real = MessageStore.get_many

    def get_many(self: MessageStore, message_ids: list[str]) -> Any:
        found = real(self, message_ids)
        other = services().messages.get(ids[1])
        other.updated_at = other.updated_at  # an unrelated write: the version moves on
        services().messages.save(other)
        return found

    monkeypatch.setattr(MessageStore, "get_many", get_many)
    # WHEN the worker handles the batch
    result = invoke(smtp_stack, messages)
    # THEN only that message is reported failed (SQS retries it alone); the others are delivered once
    by_id = {m["MessageId"]: m for m in messages}
    failed = [by_id[f["itemIdentifier"]] for f in result["batchItemFailures"]]
    assert [m["Body"] for m in failed] == [m["Body"] for m in messages if ids[1] in m["Body"]]
    assert statuses(ids) == ["delivered", "queued", "delivered"]
    assert sorted(received(sink)) == ["buyer0-0@example.org", "buyer2-0@example.org"]


def test_a_suppressed_recipient_in_a_batch_is_not_sent_to(smtp_stack: Stack, sink: RecordingSink) -> None:
    # GIVEN two queued messages, the second to a suppressed address
    from postroom.suppression.suppression_store import Suppression, SuppressionReason
    from postroom.wiring.event_services import event_services

    event_services().suppressions.add(
        "default", Suppression(address="buyer1-0@example.org", reason=SuppressionReason.MANUAL)
    )
    ids = send(smtp_stack, 2)
    # WHEN the worker handles them as one batch
    assert invoke(smtp_stack, queued(smtp_stack, 2)) == {"batchItemFailures": []}
    # THEN the first is delivered and the second suppressed, unsent
    assert statuses(ids) == ["delivered", "suppressed"]
    assert list(received(sink)) == ["buyer0-0@example.org"]
    suppressed = services().messages.get(ids[1]).recipients[0]
    assert suppressed.status is RecipientStatus.SUPPRESSED
