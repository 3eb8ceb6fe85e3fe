"""send_at: EventBridge Scheduler schedules (moto), cancel and reschedule, and firing them as the local stack does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3

from postroom.local.poller import build_sqs_event
from postroom.local.schedule_runner import ScheduleFirer
from tests.conftest import Stack

MESSAGE = {"from": "orders@shop.example", "to": ["ann@example.org"], "subject": "Later", "text": "x", "delivery": "ses"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def schedule_of(stack: Stack, msg_id: str) -> dict:
    return boto3.client("scheduler").get_schedule(Name=msg_id, GroupName=stack.resources["ScheduleGroup"]["Ref"])


def run_worker(stack: Stack) -> dict:
    messages = stack.queue_messages()
    return stack.worker.invoke(build_sqs_event(messages, stack.resources["DeliveryQueue"]["Arn"], "us-east-1"))


def test_send_at_creates_a_one_time_schedule_and_queues_nothing(stack: Stack) -> None:
    # GIVEN a message due in an hour
    due = datetime.now(UTC) + timedelta(hours=1)
    status, body = stack.request("POST", "/v1/messages", {**MESSAGE, "send_at": iso(due)})
    # THEN it is accepted as scheduled, nothing is queued, and one schedule targets the delivery queue
    assert (status, body["status"]) == (202, "scheduled")
    assert stack.queue_messages() == []
    schedule = schedule_of(stack, body["id"])
    assert schedule["ScheduleExpression"] == f"at({due.astimezone(UTC):%Y-%m-%dT%H:%M:%S})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["Arn"] == stack.resources["DeliveryQueue"]["Arn"]
    assert schedule["Target"]["RoleArn"] == stack.resources["SchedulerRole"]["Arn"]
    record = stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert json.loads(schedule["Target"]["Input"]) == {"v": 1, "id": body["id"], "send_at": record["send_at"]}
    assert record["status"] == "scheduled"
    # and the body is kept outside messages/, whose lifecycle rule would expire it before a far send_at
    boto3.client("s3").head_object(
        Bucket=stack.resources["BodiesBucket"]["Ref"], Key=f"scheduled/{body['id']}/request.json"
    )


def test_past_send_at_sends_now(stack: Stack) -> None:
    status, body = stack.request("POST", "/v1/messages", {**MESSAGE, "send_at": "2001-01-01T00:00:00Z"})
    assert (status, body["status"]) == (202, "queued")
    assert len(stack.queue_messages()) == 1


def test_send_at_must_have_a_zone_and_a_horizon(stack: Stack) -> None:
    status, body = stack.request("POST", "/v1/messages", {**MESSAGE, "send_at": "2030-01-01T00:00:00"})
    assert (status, body["error"]["field"]) == (422, "send_at")
    status, body = stack.request("POST", "/v1/messages", {**MESSAGE, "send_at": "2999-01-01T00:00:00Z"})
    assert status == 422
    assert "10 years" in body["error"]["message"]


def test_cancel_deletes_the_schedule_and_nothing_is_sent(stack: Stack) -> None:
    _, body = stack.request("POST", "/v1/messages", {**MESSAGE, "send_at": iso(datetime.now(UTC) + timedelta(days=40))})
    status, record = stack.request("POST", f"/v1/messages/{body['id']}/cancel")
    assert (status, record["status"]) == (200, "cancelled")
    assert boto3.client("scheduler").list_schedules()["Schedules"] == []
    status, again = stack.request("POST", f"/v1/messages/{body['id']}/cancel")
    assert (status, again["error"]["code"]) == (409, "conflict")
    # a firing that raced the cancel finds a cancelled message and sends nothing
    boto3.client("sqs").send_message(
        QueueUrl=stack.resources["DeliveryQueue"]["Ref"],
        MessageBody=json.dumps({"v": 1, "id": body["id"], "send_at": record["send_at"]}),
    )
    run_worker(stack)
    assert stack.request("GET", f"/v1/messages/{body['id']}")[1]["status"] == "cancelled"


def test_reschedule_moves_the_schedule_and_stale_firings_are_dropped(stack: Stack) -> None:
    # GIVEN a scheduled message
    first_due = datetime.now(UTC) + timedelta(hours=1)
    _, body = stack.request("POST", "/v1/messages", {**MESSAGE, "send_at": iso(first_due)})
    old = stack.request("GET", f"/v1/messages/{body['id']}")[1]["send_at"]
    # WHEN it is rescheduled
    new_due = first_due + timedelta(days=2)
    status, record = stack.request("PATCH", f"/v1/messages/{body['id']}", {"send_at": iso(new_due)})
    assert status == 200, record
    # THEN the schedule and its input carry the new time
    schedule = schedule_of(stack, body["id"])
    assert schedule["ScheduleExpression"] == f"at({new_due:%Y-%m-%dT%H:%M:%S})"
    assert json.loads(schedule["Target"]["Input"])["send_at"] == record["send_at"] != old
    # and a firing made for the old time (a race with the update) sends nothing
    boto3.client("sqs").send_message(
        QueueUrl=stack.resources["DeliveryQueue"]["Ref"],
        MessageBody=json.dumps({"v": 1, "id": body["id"], "send_at": old}),
    )
    run_worker(stack)
    assert stack.request("GET", f"/v1/messages/{body['id']}")[1]["status"] == "scheduled"
    # a reschedule to a time that is too close is refused
    status, error = stack.request("PATCH", f"/v1/messages/{body['id']}", {"send_at": iso(datetime.now(UTC))})
    assert status == 409
    assert "30 seconds" in error["error"]["message"]


def test_the_local_firer_queues_a_due_message_and_the_worker_delivers_it(stack: Stack) -> None:
    # GIVEN a message scheduled for later, and the local stack's firer
    _, body = stack.request(
        "POST", "/v1/messages", {**MESSAGE, "send_at": iso(datetime.now(UTC) + timedelta(minutes=5))}
    )
    firer = ScheduleFirer(scheduler=boto3.client("scheduler"), sqs=boto3.client("sqs"))
    # WHEN it is not due yet nothing fires; once due, the schedule's target action runs and the schedule is deleted
    assert firer.fire_due() == 0
    assert firer.fire_due(now=datetime.now(UTC) + timedelta(minutes=6)) == 1
    assert boto3.client("scheduler").list_schedules()["Schedules"] == []
    # THEN the worker sends it (SES, moto) and it is delivered
    assert run_worker(stack) == {"batchItemFailures": []}
    record = stack.request("GET", f"/v1/messages/{body['id']}")[1]
    assert record["status"] == "sent"  # accepted by SES; "delivered" comes with SES's Delivery event
    assert record["recipients"][0]["ses_message_id"]
