"""Recording events: the one place that stores an event, then does what follows from it - suppress the address after
a hard bounce, a complaint or an unsubscribe, and queue the webhook deliveries.

The follow-up runs after the event is stored and is marked done on the event's dedupe item only once it worked. If it
fails (the webhook queue is down), the caller's retry finds the event already stored, and does only the follow-up
again: suppression is idempotent and webhook receivers deduplicate by ``webhook-id`` (the event id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from postroom.core.clock import now_iso
from postroom.events.event_model import Event, EventType, new_event_id

if TYPE_CHECKING:
    from postroom.core.message_record import MessageRecord
    from postroom.events.event_store import EventStore, Recorded
    from postroom.suppression.suppression_store import Suppression, SuppressionStore
    from postroom.webhooks.fanout import WebhookFanout


@dataclass
class Pending:
    """An event to record, with its dedupe key and what should follow it."""

    event: Event
    key: str
    suppress: Suppression | None = None
    also: list[dict[str, Any]] = field(default_factory=list)  # TransactWriteItems that happen only with the event
    # The caller knows no event was ever recorded under ``key`` (the worker's events of an attempt whose results it
    # has just saved, conditionally, itself): when nothing follows it, it is written without the dedupe condition,
    # batched with others (BatchWriteItem, 25 a request) instead of one conditional PutItem each.
    fresh: bool = False


def make_event(
    record: MessageRecord,
    type_: EventType,
    *,
    recipient: str | None,
    source: str,
    occurred_at: str | None = None,
    ses_message_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    recorded_at = now_iso()
    event = Event(
        id=new_event_id(),
        type=type_,
        message_id=record.id,
        recipient=recipient,
        occurred_at=occurred_at or recorded_at,
        recorded_at=recorded_at,
        source=source,
        ses_message_id=ses_message_id,
        tags=record.tags,
        metadata=record.metadata,
        details={key: value for key, value in (details or {}).items() if value is not None},
    )
    event._sender_domain = record.from_address.rpartition("@")[2].lower()
    return event


class ReputationWatch(Protocol):
    """Told about every newly stored event; answers the pause events its counting made happen (the breaker)."""

    def observe(self, tenant: str, events: list[Event]) -> list[Event]: ...


class EventRecorder:
    def __init__(
        self,
        *,
        events: EventStore,
        suppressions: SuppressionStore,
        fanout: WebhookFanout | None = None,
        reputation: ReputationWatch | None = None,
    ) -> None:
        self._events = events
        self._suppressions = suppressions
        self._fanout = fanout
        self._reputation = reputation

    def record(self, tenant: str, pending: list[Pending]) -> list[Recorded]:
        """Store each event once; then, for those whose follow-up is not done yet, suppress and queue webhooks.

        An event that nothing follows (no suppression, no subscription wants its type) is stored already settled, so
        it costs its one write and no second one."""
        wanted = self._fanout.wanted(tenant, {item.event.type.value for item in pending}) if self._fanout else set()

        def settles(item: Pending) -> bool:
            return item.suppress is None and item.event.type.value not in wanted

        batched = [item for item in pending if item.fresh and not item.also and settles(item)]
        stored = dict(
            zip(
                (id(item) for item in batched),
                self._events.record_fresh([(item.event, item.key) for item in batched], tenant=tenant),
                strict=True,
            )
        )
        results = [
            (
                item,
                stored.get(id(item))
                or self._events.record(item.event, tenant=tenant, key=item.key, also=item.also, settled=settles(item)),
            )
            for item in pending
        ]
        unsettled = [(item, recorded) for item, recorded in results if not recorded.settled]
        for item, _ in unsettled:
            if item.suppress is not None:
                self._suppressions.add(tenant, item.suppress)
        if self._fanout is not None:
            self._fanout.publish(tenant, [recorded.event for _, recorded in unsettled])
        for item, recorded in unsettled:
            self._events.mark_settled(tenant=tenant, message_id=recorded.event.message_id, key=item.key)
        if self._reputation is not None:
            # Only events stored by this call count (a retried recording finds them stored and is not counted
            # twice); the pending event, not the stored copy, knows its sending domain.
            fresh = [item.event for item, recorded in results if recorded.new]
            paused = self._reputation.observe(tenant, fresh) if fresh else []
            if paused:
                self.record(tenant, [Pending(event, f"{event.type.value}:{event.id}") for event in paused])
        return [recorded for _, recorded in results]
