"""A message whose processing keeps crashing the worker ends failed, with a reason, in the dead-letter queue - instead
of being moved there by SQS's redrive with no reason and its record left "sending" (real worker handler, moto)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from postroom.accept.delivery_queue import DeliveryQueue
from postroom.core.message_store import MessageStore
from postroom.core.settings import DELIVERY_QUEUE_MAX_RECEIVE_COUNT, Settings, SettingsError, settings_from_env
from postroom.deliver.ses_agent import SesDeliveryAgent
from postroom.local import template as tpl
from postroom.local.poller import build_sqs_event
from tests.conftest import ROOT, Stack

SEND = {"from": "orders@shop.example", "to": ["ann@example.org"], "subject": "Poison", "text": "x", "delivery": "ses"}
THRESHOLD = DELIVERY_QUEUE_MAX_RECEIVE_COUNT - 2


class SimulatedCrashError(RuntimeError):
    pass


def crash_in_every_attempt(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """SES hand-overs die, as a worker killed by whatever this message does to it; returns the calls made."""
    calls: list[list[str]] = []

    def deliver(self: SesDeliveryAgent, mail_from: str, recipients: list[str], message: bytes) -> Any:
        calls.append(recipients)
        raise SimulatedCrashError("the worker dies in the attempt")

    monkeypatch.setattr(SesDeliveryAgent, "deliver", deliver)
    return calls


def hand_over(stack: Stack, messages: list[dict[str, Any]], *counts: int) -> dict[str, Any] | BatchProcessingError:
    """The worker invoked as Lambda would, each record carrying the ApproximateReceiveCount SQS would give it."""
    event = build_sqs_event(messages, stack.resources["DeliveryQueue"]["Arn"], "us-east-1")
    for record, count in zip(event["Records"], counts, strict=True):
        record["attributes"]["ApproximateReceiveCount"] = str(count)
    try:
        return stack.worker.invoke(event)
    except BatchProcessingError as exc:  # every record of the batch failed: an invocation error, as on Lambda
        return exc


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    return (
        boto3.client("sqs")
        .receive_message(
            QueueUrl=stack.resources["DeliveryDeadLetterQueue"]["Ref"],
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
        )
        .get("Messages", [])
    )


def message(stack: Stack, msg_id: str) -> dict[str, Any]:
    status, record = stack.request("GET", f"/v1/messages/{msg_id}")
    assert status == 200, record
    return record


def test_template_redrive_and_the_default_threshold_stay_in_step() -> None:
    # The worker must give up before SQS's redrive does, with receives to spare for a give-up that itself crashed.
    template = tpl.load_template(ROOT / "template.yaml")
    redrive = template["Resources"]["DeliveryQueue"]["Properties"]["RedrivePolicy"]
    assert int(redrive["maxReceiveCount"]) == DELIVERY_QUEUE_MAX_RECEIVE_COUNT
    assert Settings.model_fields["poison_receive_count"].default == int(redrive["maxReceiveCount"]) - 2
    # and the deferral limit stays below it, so a message that is only being retried is never taken for a crash
    assert Settings.model_fields["max_attempts"].metadata[-1].le < THRESHOLD


def test_a_threshold_at_or_below_max_attempts_is_refused_at_cold_start() -> None:
    env = {"POSTROOM_TABLE": "t", "POSTROOM_BUCKET": "b", "POSTROOM_QUEUE_URL": "q", "POSTROOM_DLQ_URL": "d"}
    assert settings_from_env(env).poison_receive_count == THRESHOLD
    with pytest.raises(
        SettingsError, match=r"POSTROOM_POISON_RECEIVE_COUNT \(10\) must be above POSTROOM_MAX_ATTEMPTS \(10\)"
    ):
        settings_from_env({**env, "POSTROOM_MAX_ATTEMPTS": "10", "POSTROOM_POISON_RECEIVE_COUNT": "10"})
    with pytest.raises(SettingsError, match="POSTROOM_POISON_RECEIVE_COUNT"):
        settings_from_env({**env, "POSTROOM_POISON_RECEIVE_COUNT": str(DELIVERY_QUEUE_MAX_RECEIVE_COUNT + 1)})


def test_a_message_that_keeps_crashing_is_given_up_with_a_reason(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an accepted message whose every attempt crashes the worker
    status, body = stack.request("POST", "/v1/messages", SEND)
    assert status == 202, body
    calls = crash_in_every_attempt(monkeypatch)
    (queued,) = stack.queue_messages()
    # WHEN SQS hands it over below the threshold  THEN the worker attempts it, crashes, and SQS keeps it
    for count in (1, THRESHOLD - 1):
        assert isinstance(hand_over(stack, [queued], count), BatchProcessingError)
    assert len(calls) == 2
    assert message(stack, body["id"])["status"] == "sending"
    assert dead_letters(stack) == []
    # WHEN SQS hands it over at the threshold
    result = hand_over(stack, [queued], THRESHOLD)
    # THEN the worker does not attempt it again, and reports it done, so SQS deletes it instead of redriving it
    assert result == {"batchItemFailures": []}
    assert len(calls) == 2
    # and the record is final, failed, and says why, per recipient too
    record = message(stack, body["id"])
    assert record["status"] == "failed"
    assert record["reason"] == (
        f"gave up: processing crashed or timed out repeatedly (received {THRESHOLD} times from the delivery queue, "
        "2 delivery attempts recorded)"
    )
    assert [(r["status"], r["reply"]) for r in record["recipients"]] == [("failed", record["reason"])]
    # and the dead-letter queue holds the pointer with the reason, in its body and as an attribute
    (parked,) = dead_letters(stack)
    assert json.loads(parked["Body"]) == {"v": 1, "id": body["id"], "reason": record["reason"]}
    assert parked["MessageAttributes"]["reason"]["StringValue"] == record["reason"]
    # and the give-up went through the observers: the recipient's failed event carries the reason
    status, timeline = stack.request("GET", f"/v1/messages/{body['id']}/events")
    assert status == 200, timeline
    failed = [e for e in timeline["data"] if e["type"] == "failed"]
    assert [(e["recipient"], e["details"]["reason"]) for e in failed] == [("ann@example.org", record["reason"])]
    # WHEN the same pointer comes once more (SQS delivers at least once)  THEN nothing is parked or sent again
    assert hand_over(stack, [queued], THRESHOLD + 1) == {"batchItemFailures": []}
    assert (len(calls), dead_letters(stack)) == (2, [])


def test_below_the_threshold_delivery_proceeds_normally(stack: Stack) -> None:
    # GIVEN a message SQS has handed over many times already (say, after crashes that have since stopped)
    _, body = stack.request("POST", "/v1/messages", SEND)
    (queued,) = stack.queue_messages()
    # WHEN the worker gets it one receive short of the threshold  THEN it is sent as usual, and nothing is parked
    assert hand_over(stack, [queued], THRESHOLD - 1) == {"batchItemFailures": []}
    record = message(stack, body["id"])
    assert (record["status"], record["reason"], record["attempts"]) == ("sent", None, 1)
    assert dead_letters(stack) == []


def test_a_crash_in_the_give_up_leaves_the_message_for_the_next_receive(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a crash-looping message at the threshold, in a batch with a healthy one, and a dead-letter queue that
    # cannot be written to
    _, poison = stack.request("POST", "/v1/messages", SEND)
    _, healthy = stack.request("POST", "/v1/messages", {**SEND, "subject": "Healthy"})
    queued = {json.loads(m["Body"])["id"]: m for m in stack.queue_messages()}
    real_dead_letter = DeliveryQueue.dead_letter

    def unavailable(self: DeliveryQueue, task: object, reason: str) -> None:
        raise SimulatedCrashError("the dead-letter queue is unavailable")

    monkeypatch.setattr(DeliveryQueue, "dead_letter", unavailable)
    # WHEN the worker gets the batch
    result = hand_over(stack, [queued[poison["id"]], queued[healthy["id"]]], THRESHOLD, 1)
    # THEN only the poison message is reported failed (SQS keeps it), its record is untouched, the healthy one is sent
    assert result == {"batchItemFailures": [{"itemIdentifier": queued[poison["id"]]["MessageId"]}]}
    assert (message(stack, poison["id"])["status"], message(stack, poison["id"])["reason"]) == ("queued", None)
    assert message(stack, healthy["id"])["status"] == "sent"
    # and the log says why, for an operator who later finds it redriven without a reason
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage().startswith("could not give up on a message whose processing keeps crashing")
    assert (logged.message_id, logged.receive_count) == (poison["id"], THRESHOLD)
    # WHEN the next receive finds the dead-letter queue back  THEN the give-up completes
    monkeypatch.setattr(DeliveryQueue, "dead_letter", real_dead_letter)
    assert hand_over(stack, [queued[poison["id"]]], THRESHOLD + 1) == {"batchItemFailures": []}
    assert message(stack, poison["id"])["status"] == "failed"
    assert len(dead_letters(stack)) == 1


def test_a_crash_after_parking_gives_up_again_rather_than_losing_the_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a give-up that parks the pointer and then dies saving the record
    _, body = stack.request("POST", "/v1/messages", SEND)
    (queued,) = stack.queue_messages()
    real_save = MessageStore.save

    def dies(self: MessageStore, record: object) -> None:
        raise SimulatedCrashError("the worker dies before the record is saved")

    monkeypatch.setattr(MessageStore, "save", dies)
    # WHEN the worker gets it at the threshold  THEN the invocation fails and SQS keeps the pointer
    assert isinstance(hand_over(stack, [queued], THRESHOLD), BatchProcessingError)
    assert message(stack, body["id"])["status"] == "queued"
    # WHEN the next receive can save  THEN the record ends failed with its reason (a second DLQ entry at worst)
    monkeypatch.setattr(MessageStore, "save", real_save)
    assert hand_over(stack, [queued], THRESHOLD + 1) == {"batchItemFailures": []}
    record = message(stack, body["id"])
    assert record["status"] == "failed"
    assert f"received {THRESHOLD + 1} times" in record["reason"]
    reasons = sorted(json.loads(m["Body"])["reason"] for m in dead_letters(stack))
    assert len(reasons) == 2
    assert reasons[-1] == record["reason"]
