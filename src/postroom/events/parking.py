"""Parking events whose write still fails after retries, so that none is dropped.

The worker's observer runs after the attempt's outcome is saved, so failing the SQS record would not bring the events
back (the redelivered pointer finds the message done). Instead the events are parked on the events queue - SQS, not
the DynamoDB table that just failed - as a ``postroom.parked-events`` document with the reason. The events function
(``postroom.events.ingest``) records them with the same dedupe keys; while that keeps failing the queue redelivers,
and after its receive limit the document rests in the events DLQ, reason included.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from postroom.events.event_model import Event
from postroom.events.recorder import Pending
from postroom.suppression.suppression_store import Suppression

if TYPE_CHECKING:
    from postroom.events.recorder import EventRecorder

PARKED_KIND = "postroom.parked-events"


def parked_body(tenant: str, pending: list[Pending], reason: str) -> str:
    return json.dumps(
        {
            "kind": PARKED_KIND,
            "tenant": tenant,
            "reason": reason,
            "events": [
                {
                    "event": item.event.model_dump(mode="json"),
                    "key": item.key,
                    "suppress": item.suppress.model_dump(mode="json") if item.suppress else None,
                }
                for item in pending
                if not item.also  # transactional companions are not parked: their callers stay retriable instead
            ],
        }
    )


def parked(body: str) -> tuple[str, list[Pending]] | None:
    """The tenant and events of a parked document; None for anything else (an SES event)."""
    try:
        data: Any = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("kind") != PARKED_KIND:
        return None
    pending = [
        Pending(
            Event.model_validate(entry["event"]),
            key=entry["key"],
            suppress=Suppression.model_validate(entry["suppress"]) if entry.get("suppress") else None,
        )
        for entry in data["events"]
    ]
    return str(data["tenant"]), pending


class EventParking:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def park(self, tenant: str, pending: list[Pending], reason: str) -> None:
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=parked_body(tenant, pending, reason))


def record_parked(recorder: EventRecorder, body: str) -> int | None:
    """Record a parked document's events (raising if the write fails again); None if ``body`` is not one."""
    found = parked(body)
    if found is None:
        return None
    tenant, pending = found
    recorder.record(tenant, pending)
    return len(pending)
