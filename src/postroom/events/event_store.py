"""Event items in the single table.

    Feed      pk=TENANT#<tenant>#EVT#<yyyy-mm-dd>   sk=<event id>          doc, expires_at
    Timeline  pk=MSG#<message id>                   sk=EVT#<event id>      doc, expires_at
    Dedupe    pk=EVTKEY#<sha256 of tenant + key>    sk=EVTKEY              event_id, settled, expires_at

The feed is partitioned by day (of the event id's ULID time) so no partition grows without bound and a cursor, itself
an event id, names the partition to continue in. The timeline sits in the message's own partition, beside the
message item. All three are written in one transaction whose first item is conditional on the dedupe key being new:
an event reported twice (SNS delivers at least once) is stored once, and a status change written in the same
transaction happens exactly once with it. Powertools Idempotency is not used here on purpose: it records completion
*after* the effect, so a crash in between repeats the effect; a condition inside the effect's own transaction cannot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from postroom.core.dynamo import from_item, to_item
from postroom.events.event_model import Event, boundary_id, event_time_ms

_DAY = timedelta(days=1)


class ConcurrentMessageUpdateError(RuntimeError):
    """The message changed between read and write; re-read and apply the event again."""


@dataclass(frozen=True)
class Recorded:
    event: Event  # the stored event: the new one, or the one recorded first under the same key
    new: bool
    settled: bool  # follow-up work (suppression, webhooks) was done for it; False: do it (again)


@dataclass(frozen=True)
class FeedPage:
    events: list[Event]
    next_cursor: str
    has_more: bool


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def feed_pk(tenant: str, event_id: str) -> str:
    return f"TENANT#{tenant}#EVT#{day_of(event_time_ms(event_id))}"


def _dedupe_pk(tenant: str, key: str) -> str:
    return "EVTKEY#" + hashlib.sha256(f"{tenant}\n{key}".encode()).hexdigest()


class EventStore:
    def __init__(self, dynamodb: Any, table: str, *, retention_days: int = 30) -> None:
        self._ddb = dynamodb
        self._table = table
        self._retention = timedelta(days=retention_days)

    # --- writing ------------------------------------------------------------------------------------------------
    def record(self, event: Event, *, tenant: str, key: str, also: list[dict[str, Any]] | None = None) -> Recorded:
        """Store ``event`` unless an event with the same ``key`` was stored before; ``also`` are further
        TransactWriteItems operations (a message update) that happen if and only if the event is new."""
        expires = int((datetime.now(UTC) + self._retention).timestamp())
        doc = event.model_dump_json()
        dedupe = {"pk": _dedupe_pk(tenant, key), "sk": "EVTKEY"}
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item({**dedupe, "event_id": event.id, "settled": False, "expires_at": expires}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item(
                        {"pk": feed_pk(tenant, event.id), "sk": event.id, "doc": doc, "expires_at": expires}
                    ),
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item(
                        {"pk": f"MSG#{event.message_id}", "sk": f"EVT#{event.id}", "doc": doc, "expires_at": expires}
                    ),
                }
            },
            *(also or []),
        ]
        try:
            self._ddb.transact_write_items(TransactItems=items)
        except self._ddb.exceptions.TransactionCanceledException as exc:
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return self._duplicate(tenant, dedupe, event)
            if "ConditionalCheckFailed" in reasons[3:]:
                raise ConcurrentMessageUpdateError(event.message_id) from exc
            raise
        return Recorded(event, new=True, settled=False)

    def _duplicate(self, tenant: str, dedupe: dict[str, str], event: Event) -> Recorded:
        item = self._ddb.get_item(TableName=self._table, Key=to_item(dedupe), ConsistentRead=True).get("Item")
        stored = from_item(item) if item else {}
        original = self.get(tenant, str(stored.get("event_id", ""))) if stored.get("event_id") else None
        return Recorded(original or event, new=False, settled=bool(stored.get("settled", True)))

    def known(self, *, tenant: str, key: str) -> bool:
        """Whether an event was recorded under ``key`` (its follow-up may still be due: record it again to do that)."""
        item = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": _dedupe_pk(tenant, key), "sk": "EVTKEY"}), ConsistentRead=True
        ).get("Item")
        return item is not None

    def mark_settled(self, *, tenant: str, key: str) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item({"pk": _dedupe_pk(tenant, key), "sk": "EVTKEY"}),
            UpdateExpression="SET settled = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":t": True}),
        )

    # --- reading ------------------------------------------------------------------------------------------------
    def get(self, tenant: str, event_id: str) -> Event | None:
        response = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": feed_pk(tenant, event_id), "sk": event_id})
        )
        item = response.get("Item")
        return Event.model_validate(json.loads(from_item(item)["doc"])) if item else None

    def timeline(self, message_id: str) -> list[Event]:
        events: list[Event] = []
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :evt)",
            ExpressionAttributeValues=to_item({":pk": f"MSG#{message_id}", ":evt": "EVT#"}),
        ):
            events.extend(Event.model_validate(json.loads(from_item(item)["doc"])) for item in page.get("Items", []))
        return events

    def feed(self, tenant: str, *, after: str | None, limit: int, until_ms: int) -> FeedPage:
        """Events after the cursor ``after`` (an event id), oldest first, up to ``limit``, none made after
        ``until_ms``. Walks the day partitions from the cursor's day to ``until_ms``'s day."""
        oldest_ms = int((datetime.now(UTC) - self._retention).timestamp() * 1000)
        # A cursor from the future (hand-made, or a clock far ahead) reads from until_ms's day: nothing is newer.
        start_ms = min(max(event_time_ms(after), oldest_ms), until_ms) if after else oldest_ms
        lower = after or ""
        upper = boundary_id(until_ms)
        day = datetime.fromtimestamp(start_ms / 1000, UTC).date()
        last_day = datetime.fromtimestamp(until_ms / 1000, UTC).date()
        found: list[Event] = []
        while day <= last_day and len(found) <= limit:
            found.extend(self._day(tenant, day.isoformat(), lower, upper, limit + 1 - len(found)))
            day += _DAY
        has_more = len(found) > limit
        events = found[:limit]
        # When the page is not full, everything up to until_ms has been read: the next call can start there and skip
        # the empty days in between (an event id made at or before until_ms is never larger than ``upper``).
        next_cursor = events[-1].id if has_more else max(upper, after or "")
        return FeedPage(events, next_cursor, has_more)

    def _day(self, tenant: str, day: str, lower: str, upper: str, wanted: int) -> list[Event]:
        events: list[Event] = []
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": to_item(
                {":pk": f"TENANT#{tenant}#EVT#{day}", ":lo": lower or "evt_", ":hi": upper}
            ),
            "ScanIndexForward": True,
        }
        while len(events) < wanted:
            response = self._ddb.query(**params, Limit=wanted - len(events) + 1)
            for item in response.get("Items", []):
                if item["sk"]["S"] != lower:  # BETWEEN is inclusive; the cursor itself was already handed out
                    events.append(Event.model_validate(json.loads(from_item(item)["doc"])))
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return events[:wanted]
