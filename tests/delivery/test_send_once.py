"""The worker sends a message once even when it crashes between the recipient's server accepting it and the record's
save, and SQS hands the message to it again (real worker handler, moto, loopback DNS and SMTP)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from postroom.core.message_store import MessageStore
from postroom.core.status import RecipientStatus
from postroom.local.poller import build_sqs_event
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services, services
from postroom.wiring.worker_batch import reset_resolver
from tests.conftest import Stack


class SimulatedCrashError(RuntimeError):
    pass


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
        reset_services()
        reset_resolver()
        yield stack


def crash_after_remote_accept(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first save that would record a delivered recipient dies instead, as a worker killed at that moment."""
    crashes: list[str] = []
    real_save = MessageStore.save

    def save(self: MessageStore, record) -> None:
        if not crashes and any(r.status is RecipientStatus.DELIVERED for r in record.recipients):
            crashes.append(record.id)
            raise SimulatedCrashError("worker died after the sink accepted the message")
        real_save(self, record)

    monkeypatch.setattr(MessageStore, "save", save)
    return crashes


def deliver_twice(stack: Stack) -> tuple[dict | BatchProcessingError, dict]:
    """The same SQS message handed to the worker twice: after a failed invocation, SQS redelivers it."""
    (message,) = stack.queue_messages()
    event = build_sqs_event([message], stack.resources["DeliveryQueue"]["Arn"], "us-east-1")
    try:
        first: dict | BatchProcessingError = stack.worker.invoke(event)
    except BatchProcessingError as exc:  # a batch whose every record failed fails the invocation, as on Lambda
        first = exc
    return first, stack.worker.invoke(event)


SEND = {"from": "orders@smtp.example", "to": ["ann@example.org", "bob@example.org"], "subject": "Once", "text": "x"}


def test_redelivery_after_a_crash_between_accept_and_save_does_not_send_again(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a queued message and a worker that dies right after the recipient's server accepted it
    _, body = smtp_stack.request("POST", "/v1/messages", SEND)
    crashes = crash_after_remote_accept(monkeypatch)
    # WHEN SQS hands the message to the worker, it crashes, and SQS hands it over again
    first, second = deliver_twice(smtp_stack)
    # THEN the first invocation failed (SQS keeps the message), the second succeeded, the server got it exactly once,
    assert crashes == [body["id"]]
    assert isinstance(first, BatchProcessingError)
    assert second == {"batchItemFailures": []}
    assert len(sink.messages) == 1
    assert sorted(sink.messages[0].rcpt_tos) == ["ann@example.org", "bob@example.org"]
    # and the record shows the accepted delivery, from the one SMTP transaction that happened
    record = smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert record["status"] == "delivered"
    assert [(r["status"], r["attempts"], r["smtp_code"]) for r in record["recipients"]] == [("delivered", 1, 250)] * 2


def test_without_the_guard_the_same_crash_sends_twice(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the same crash, on a stack without an idempotency table (the guard is off)
    monkeypatch.setenv("POSTROOM_IDEMPOTENCY_TABLE", "")
    reset_services()
    smtp_stack.request("POST", "/v1/messages", SEND)
    crash_after_remote_accept(monkeypatch)
    deliver_twice(smtp_stack)
    # THEN the redelivery sends again: the gap the guard closes
    assert len(sink.messages) == 2


def test_a_deferred_recipient_is_retried_despite_the_guard(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a server that refuses the first DATA with 451
    from postroom.testing.smtp_peers import Stage

    sink.script(Stage.DATA, "451 4.3.0 try again later", times=1)
    _, body = smtp_stack.request("POST", "/v1/messages", SEND)
    # WHEN the worker tries, is deferred, and tries again (a new attempt for those recipients)
    first, _ = deliver_twice(smtp_stack)
    # THEN the first invocation reported the deferred record (SQS keeps it, no invocation error), the second attempt
    # is not mistaken for a replay: it sends, and the message is delivered
    assert isinstance(first, dict)
    assert len(first["batchItemFailures"]) == 1
    assert len(sink.messages) == 1
    assert smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]["status"] == "delivered"


def test_stored_results_come_back_with_their_enums() -> None:
    # The guard keeps results as JSON; a replayed result must be what the agent handed over, enums included (a
    # bounce_type left a string was saved into the record as one)
    import json

    from postroom.core.bounce_types import BounceType
    from postroom.core.delivery_results import Outcome, RecipientResult
    from postroom.deliver.send_once import _from_json, _to_json

    results = [
        RecipientResult("a@example.org", Outcome.DEFERRED, smtp_code=452, enhanced_status="4.2.2", reply="full"),
        RecipientResult("b@example.org", Outcome.DELIVERED, smtp_code=250),
    ]
    replayed = _from_json(json.loads(json.dumps(_to_json(results))))
    assert replayed == results
    assert replayed[0].bounce_type is BounceType.MAILBOX_FULL
    assert replayed[1].bounce_type is None


def hand_over(stack: Stack, message: dict, receive_count: int) -> dict:
    """The queued message handed to the worker, as SQS does (again after a crash), with its ApproximateReceiveCount."""
    event = build_sqs_event([message], stack.resources["DeliveryQueue"]["Arn"], "us-east-1")
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return stack.worker.invoke(event)


def dead_lettered(stack: Stack) -> list[dict]:
    url = stack.resources["DeliveryDeadLetterQueue"]["Ref"]
    return boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])


def test_a_crashed_attempt_whose_redelivery_reaches_the_crash_loop_threshold_ends_delivered(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a message the sink accepted, and a worker that died before saving that (the record says "sending")
    _, body = smtp_stack.request("POST", "/v1/messages", SEND)
    crash_after_remote_accept(monkeypatch)
    (queued,) = smtp_stack.queue_messages()
    with pytest.raises(BatchProcessingError):
        hand_over(smtp_stack, queued, 1)
    assert smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]["status"] == "sending"
    # WHEN SQS hands the pointer over again only at the crash-loop threshold (the batches it sat in kept crashing),
    # to a fresh execution environment (the crashed one is gone, and its clients and guards with it)
    reset_services()
    threshold = services().settings.poison_receive_count
    assert hand_over(smtp_stack, queued, threshold) == {"batchItemFailures": []}
    # THEN the record is completed from what the sink answered, not failed as a crash loop: nothing is parked, and
    # the sink got the message once
    record = smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert (record["status"], record["reason"]) == ("delivered", None)
    assert [(r["status"], r["attempts"], r["smtp_code"]) for r in record["recipients"]] == [("delivered", 1, 250)] * 2
    assert dead_lettered(smtp_stack) == []
    assert len(sink.messages) == 1


def test_a_crashed_attempt_that_used_up_the_attempt_budget_ends_delivered(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stack that allows one attempt, and a worker that died after the sink accepted the message in it
    monkeypatch.setenv("POSTROOM_MAX_ATTEMPTS", "1")
    reset_services()
    _, body = smtp_stack.request("POST", "/v1/messages", SEND)
    crash_after_remote_accept(monkeypatch)
    (queued,) = smtp_stack.queue_messages()
    with pytest.raises(BatchProcessingError):
        hand_over(smtp_stack, queued, 1)
    # WHEN SQS hands the pointer over again (the crashed attempt counts: the budget is used up)
    assert hand_over(smtp_stack, queued, 2) == {"batchItemFailures": []}
    # THEN the record says delivered, as the sink answered, instead of "gave up after 1 attempts" for mail it has
    record = smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert (record["status"], record["reason"], record["attempts"]) == ("delivered", None, 1)
    assert [r["status"] for r in record["recipients"]] == ["delivered"] * 2
    assert dead_lettered(smtp_stack) == []
    assert len(sink.messages) == 1


def test_a_send_whose_results_the_guard_cannot_store_is_still_recorded(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer
    from botocore.exceptions import ClientError

    # GIVEN an idempotency table that fails the write of a send's results, after the sink answered 250 (its claim on
    # the send stays "in progress" until the invocation's time is up)
    def unavailable(self: DynamoDBPersistenceLayer, data_record: object) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")

    real_update = DynamoDBPersistenceLayer._update_record
    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", unavailable)
    _, body = smtp_stack.request("POST", "/v1/messages", SEND)
    (queued,) = smtp_stack.queue_messages()
    # WHEN the worker delivers it
    result = hand_over(smtp_stack, queued, 1)
    # THEN the 250 it has in hand is recorded anyway: the record is final, not left "sending" with its recipients
    # "pending" until the claim expires (and then sent again)
    assert result == {"batchItemFailures": []}
    record = smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert record["status"] == "delivered"
    assert [(r["status"], r["smtp_code"]) for r in record["recipients"]] == [("delivered", 250)] * 2
    # and a redelivery of the pointer sends nothing again
    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", real_update)
    assert hand_over(smtp_stack, queued, 2) == {"batchItemFailures": []}
    assert len(sink.messages) == 1


def test_a_recipient_suppressed_after_the_crash_is_recorded_as_the_server_answered(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postroom.suppression.suppression_store import Suppression, SuppressionReason
    from postroom.wiring.event_services import event_services

    # GIVEN a message the sink accepted for both recipients, and a worker that died before saving that
    _, body = smtp_stack.request("POST", "/v1/messages", SEND)
    crash_after_remote_accept(monkeypatch)
    (queued,) = smtp_stack.queue_messages()
    with pytest.raises(BatchProcessingError):
        hand_over(smtp_stack, queued, 1)
    # and one recipient put on the suppression list before SQS hands the pointer over again
    tenant = services().messages.get(body["id"]).tenant
    event_services().suppressions.add(tenant, Suppression(address="ann@example.org", reason=SuppressionReason.MANUAL))
    # WHEN it does
    assert hand_over(smtp_stack, queued, 2) == {"batchItemFailures": []}
    # THEN the record says what happened - both delivered, once - and not "suppressed" for mail ann already has
    record = smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert record["status"] == "delivered"
    assert [(r["address"], r["status"]) for r in record["recipients"]] == [
        ("ann@example.org", "delivered"),
        ("bob@example.org", "delivered"),
    ]
    assert len(sink.messages) == 1


def test_at_the_crash_loop_threshold_a_failing_lookup_of_stored_results_does_not_stop_the_give_up(
    smtp_stack: Stack, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postroom.deliver.send_once import OnceGuard

    # GIVEN a crashed attempt (the record says "sending") and stored results that cannot be read back
    _, body = smtp_stack.request("POST", "/v1/messages", SEND)
    crash_after_remote_accept(monkeypatch)
    (queued,) = smtp_stack.queue_messages()
    with pytest.raises(BatchProcessingError):
        hand_over(smtp_stack, queued, 1)

    def unreadable(self: OnceGuard, *args: object) -> None:
        raise SimulatedCrashError("stored results unreadable")

    monkeypatch.setattr(OnceGuard, "stored", unreadable)
    # WHEN SQS hands the pointer over below the threshold  THEN the lookup's failure keeps it in the queue
    with pytest.raises(BatchProcessingError):
        hand_over(smtp_stack, queued, 2)
    # WHEN it hands it over at the threshold  THEN the worker still has the last word: failed with a reason and
    # dead-lettered, rather than left "sending" for the redrive to park without one
    threshold = services().settings.poison_receive_count
    assert hand_over(smtp_stack, queued, threshold) == {"batchItemFailures": []}
    record = smtp_stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert record["status"] == "failed"
    assert record["reason"].startswith("gave up: processing crashed or timed out repeatedly")
    assert len(dead_lettered(smtp_stack)) == 1
