"""From recorded events to webhook deliveries: one task per (event, subscription that wants it) on the webhook queue.
The task carries ids only; the sender reads the subscription and the event when it sends, so a retry a day later
uses the subscription's current URL and secret."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from postroom.events.event_model import Event
    from postroom.webhooks.subscriptions import WebhookStore

TASK_VERSION = 1
_SQS_BATCH = 10


@dataclass(frozen=True, slots=True)
class WebhookTask:
    tenant: str
    subscription_id: str
    event_id: str

    def to_json(self) -> str:
        return json.dumps(
            {"v": TASK_VERSION, "tenant": self.tenant, "subscription": self.subscription_id, "event": self.event_id}
        )

    @classmethod
    def from_json(cls, body: str) -> WebhookTask:
        data = json.loads(body)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) for k in ("tenant", "subscription", "event")
        ):
            raise ValueError("queue body is not a Postroom webhook task")
        return cls(data["tenant"], data["subscription"], data["event"])


class FanoutError(RuntimeError):
    """Some tasks could not be queued; the caller retries the whole fan-out (receivers deduplicate by webhook-id)."""


class WebhookFanout:
    def __init__(self, store: WebhookStore, sqs: Any, queue_url: str) -> None:
        self._store = store
        self._sqs = sqs
        self._queue_url = queue_url

    def wanted(self, tenant: str, event_types: set[str]) -> set[str]:
        """Which of ``event_types`` some enabled subscription of the tenant wants (what ``publish`` would queue)."""
        if not event_types or not self._queue_url:
            return set()
        subscriptions = [s for s in self._store.list(tenant) if s.enabled]
        return {type_ for type_ in event_types if any(s.wants(type_) for s in subscriptions)}

    def publish(self, tenant: str, events: list[Event]) -> int:
        if not events or not self._queue_url:
            return 0
        subscriptions = [s for s in self._store.list(tenant) if s.enabled]
        tasks = [
            WebhookTask(tenant, subscription.id, event.id)
            for event in events
            for subscription in subscriptions
            if subscription.wants(event.type.value)
        ]
        for start in range(0, len(tasks), _SQS_BATCH):
            chunk = tasks[start : start + _SQS_BATCH]
            response = self._sqs.send_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "MessageBody": task.to_json()} for i, task in enumerate(chunk)],
            )
            if response.get("Failed"):
                raise FanoutError(f"{len(response['Failed'])} webhook tasks could not be queued")
        return len(tasks)

    def replay(self, tenant: str, subscription_id: str, event_id: str) -> None:
        """Queue one more delivery of a recorded event to one subscription (the console's "replay"). The sender
        signs and sends it as any other task, with the subscription's current URL and secret."""
        if not self._queue_url:
            raise FanoutError("no webhook queue is configured")
        self._sqs.send_message(
            QueueUrl=self._queue_url, MessageBody=WebhookTask(tenant, subscription_id, event_id).to_json()
        )
