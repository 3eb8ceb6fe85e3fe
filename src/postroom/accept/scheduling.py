"""Messages with a ``send_at``: EventBridge Scheduler one-time schedules that put the delivery pointer on the queue.

One schedule per message, named after its id, in the stack's schedule group; its target is the delivery queue
(SendMessage, with a role Scheduler assumes) and its input the same pointer the API enqueues, plus the ``send_at``
it was made for. ``ActionAfterCompletion: DELETE`` removes it once it has fired. Any horizon works: Scheduler keeps
one-time schedules until they are due.

Cancel and reschedule are guarded by the record's optimistic lock, and only while the message is still ``scheduled``
and not about to fire. The record changes first: a firing that races a reschedule carries the old ``send_at`` and
the worker drops it as stale; a firing that races a cancel finds a cancelled record and sends nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from postroom.accept.delivery_queue import DeliveryTask
from postroom.core.clock import isoformat, parse_iso, utcnow
from postroom.core.errors import ConflictError, ServiceUnavailableError
from postroom.core.message_store import ConcurrentUpdateError
from postroom.core.status import MessageStatus

if TYPE_CHECKING:
    from postroom.core.message_record import MessageRecord
    from postroom.core.message_store import MessageStore

# Changes closer to the due time than this are refused: the schedule may already be firing.
CHANGE_CUTOFF = timedelta(seconds=30)


def schedule_expression(at: datetime) -> str:
    # at() takes a local date-time without zone; the zone is given separately (UTC here). Seconds are the granularity.
    return f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


class DeliveryScheduler:
    def __init__(self, scheduler: Any, *, group: str, role_arn: str, queue_arn: str) -> None:
        self._scheduler = scheduler
        self._group = group
        self._role_arn = role_arn
        self._queue_arn = queue_arn

    def _request(self, task: DeliveryTask, at: datetime) -> dict[str, Any]:
        return {
            "Name": task.message_id,
            "GroupName": self._group,
            "ScheduleExpression": schedule_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self._queue_arn,
                "RoleArn": self._role_arn,
                "Input": task.to_json(),
                # Scheduler retries a failed SendMessage for up to a day before giving up on the firing.
                "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
            },
            "ActionAfterCompletion": "DELETE",
            "Description": "Postroom: queue this message for delivery",
        }

    def create(self, task: DeliveryTask, at: datetime) -> None:
        self._scheduler.create_schedule(**self._request(task, at))

    def update(self, task: DeliveryTask, at: datetime) -> None:
        # UpdateSchedule replaces the whole schedule, so it takes the same full request as CreateSchedule.
        self._scheduler.update_schedule(**self._request(task, at))

    def delete(self, message_id: str) -> bool:
        try:
            self._scheduler.delete_schedule(Name=message_id, GroupName=self._group)
        except self._scheduler.exceptions.ResourceNotFoundException:
            return False
        return True


def _check_changeable(record: MessageRecord, now: datetime) -> None:
    if record.status is not MessageStatus.SCHEDULED or record.send_at is None:
        raise ConflictError(f"message {record.id} is {record.status.value}, not scheduled; it can no longer be changed")
    if parse_iso(record.send_at) - now < CHANGE_CUTOFF:
        raise ConflictError(f"message {record.id} is due at {record.send_at} and may already be queued")


def cancel(record: MessageRecord, *, store: MessageStore, scheduler: DeliveryScheduler) -> MessageRecord:
    now = utcnow()
    _check_changeable(record, now)
    record.move_to(MessageStatus.CANCELLED)
    record.reason = "cancelled by the sender before it was sent"
    record.updated_at = isoformat(now)
    try:
        store.save(record)
    except ConcurrentUpdateError:
        raise ConflictError(f"message {record.id} changed meanwhile; read it again and retry") from None
    # After the save: should the schedule fire before it is deleted, the worker finds a cancelled message.
    scheduler.delete(record.id)
    return record


def reschedule(
    record: MessageRecord, at: datetime, *, store: MessageStore, scheduler: DeliveryScheduler
) -> MessageRecord:
    now = utcnow()
    _check_changeable(record, now)
    if at - now < CHANGE_CUTOFF:
        raise ConflictError("send_at must be at least 30 seconds ahead; to send now, cancel and send again")
    previous = record.send_at
    record.send_at = isoformat(at)
    record.updated_at = isoformat(now)
    try:
        store.save(record)
    except ConcurrentUpdateError:
        raise ConflictError(f"message {record.id} changed meanwhile; read it again and retry") from None
    try:
        scheduler.update(DeliveryTask(record.id, send_at=record.send_at), at)
    except Exception as exc:
        # Put the record back, so the unchanged schedule's firing (which carries the old send_at) is not stale.
        record.send_at = previous
        store.save(record)
        raise ServiceUnavailableError("the scheduler is unavailable; the message keeps its old send_at") from exc
    return record
