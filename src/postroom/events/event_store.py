"""Event items in the single table: one item per event.

    Event  pk=MSG#<message id>  sk=EVT#<sha256 of tenant + key>
           event_id, doc, settled, expires_at, feedpk=TENANT#<tenant>#EVT#<shard>, feedsk=<event id>
    (GSI ``feed``: feedpk / feedsk, projecting only ``doc``)

**Writes.** An event is one conditional PutItem: the item's key is derived from the event's dedupe key, so an event
reported twice (SNS delivers at least once; the worker and SES both report ``sent``) is stored once - the condition
``attribute_not_exists(pk)`` is the dedupe. Only when a status change must happen exactly once with the event
(``also``: the message update of an SES bounce or complaint) is it a 2-item TransactWriteItems. The item sits in the
message's own partition, so the message's timeline is one Query of that partition and the writes of a busy tenant
spread over its messages. Cost as AWS bills it, for an item and index entry of up to 1 KB: 1 WCU for the item and
1 WCU for its ``feed`` index entry = 2 write units (before: a 3-item transaction, 6, plus the ``settled`` update, 7).
``settled`` (suppression done, webhooks queued) is written true at once when nothing follows the event; otherwise one
UpdateItem sets it after the follow-up (1 WCU: ``settled`` is not projected, so the index is not written again).

Throttling is retried by botocore's standard retry mode (the shared clients, ``postroom.core.aws``); a transaction
cancelled for a conflict or throttling is retried here (``WRITE_ATTEMPTS``). What still fails is raised, never
swallowed: the caller keeps the work retriable or parks it (``postroom.events.observer``).

**The feed** (GSI ``feed``). A tenant's events are spread over ``FEED_SHARDS`` partition keys, the shard taken from
the last character of the event id's random part (uniform, and computable from the id alone, so ``get`` and a cursor
need no lookup). Arithmetic: at 10 000 events/s for one tenant and 1 WCU per index entry, 16 shards put ~625 WCU/s on
each partition key, under AWS's 1 000 WCU/s per partition (10 would be the minimum; 16 leaves room for entries up to
~1.6 KB). The key has no day in it, so a page never walks days: each shard is read once, from the cursor (an event id:
the index's sort key) to the settle boundary, with ``Limit = page + 1``, and the shards' runs - each sorted by id -
are merged. A page is therefore ``FEED_SHARDS`` Queries whatever the retention, the data volume or the cursor,
issued in parallel: one round trip of latency. Why not fewer: one Query reads one partition key, and a feed in strict
id order needs every event of a time range in the keys it reads; any range of a second holds events of every shard
at 10 000 events/s (that is what spreading the writes means), so an ordered page at that rate needs all of them.
Queries == shards is the price of a strictly ordered feed that is also write-sharded; ``FEED_SHARDS`` trades one
for the other (2 shards: 2 Queries, 2 000 events/s).

**Hourly counts** (the console's Overview). Each new event also adds 1 to its type's count in an hourly item,
``pk=TENANT#<tenant>#STATS#<shard>`` ``sk=HOUR#<yyyy-mm-ddThh>`` (the shard is the event's feed shard, so the counter
writes spread like the feed's). Seven days of counts are then at most 16 Queries of 168 small items, whatever the
volume, never a read of the events themselves. The count is best-effort (1 WCU more per event): a failed increment is
logged and the event still stands, since statistics must not make an event's recording fail or repeat.

Old-layout items (``TENANT#<t>#EVT#<day>`` feed items, ``EVTKEY#`` dedupe items) are not read; they expire by TTL.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from postroom.core.dynamo import from_item, to_item
from postroom.events.event_model import Event, boundary_id

logger = Logger(child=True)

FEED_INDEX = "feed"
_BATCH_WRITE_MAX = 25  # DynamoDB's BatchWriteItem limit
FEED_SHARDS = 16  # see the module docstring for the arithmetic; a power of two divides the 32 id characters evenly
WRITE_ATTEMPTS = 5  # a cancelled transaction: the first try and four more, about 1.5 s of backoff in all
_BACKOFF_BASE_S = 0.05
# Cancellation reasons that a later try can clear: another transaction held an item, or the partition was throttled.
_TRANSIENT_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
STATS_RETENTION = timedelta(days=8)  # the Overview shows seven days; a day more covers the hour being filled
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
# Shared by all stores of the execution environment: the feed's shard Queries run at once (boto3 clients are
# thread-safe), so a page costs one round trip of latency.
_feed_pool = ThreadPoolExecutor(max_workers=FEED_SHARDS, thread_name_prefix="event-feed")


class EventWriteError(RuntimeError):
    """Events DynamoDB would not take after every retry; the caller parks them (they are never dropped)."""


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


def feed_shard(event_id: str) -> int:
    """The event's write shard: its id's last character is random (the ULID's entropy), so shards fill evenly."""
    return _CROCKFORD.index(event_id[-1]) % FEED_SHARDS


def feed_pk(tenant: str, shard: int) -> str:
    return f"TENANT#{tenant}#EVT#{shard:02d}"


def stats_pk(tenant: str, shard: int) -> str:
    return f"TENANT#{tenant}#STATS#{shard:02d}"


def stats_hour(moment: datetime) -> str:
    return "HOUR#" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def event_key(tenant: str, message_id: str, key: str) -> dict[str, str]:
    """The table key of the event recorded under dedupe ``key``: the same key always names the same item."""
    return {"pk": f"MSG#{message_id}", "sk": "EVT#" + hashlib.sha256(f"{tenant}\n{key}".encode()).hexdigest()}


def _event(item: dict[str, Any]) -> Event:
    return Event.model_validate(json.loads(item["doc"]["S"]))


class EventStore:
    def __init__(self, dynamodb: Any, table: str, *, retention_days: int = 30) -> None:
        self._ddb = dynamodb
        self._table = table
        self._retention = timedelta(days=retention_days)

    # --- writing ------------------------------------------------------------------------------------------------
    def record(
        self,
        event: Event,
        *,
        tenant: str,
        key: str,
        also: list[dict[str, Any]] | None = None,
        settled: bool = False,
    ) -> Recorded:
        """Store ``event`` unless an event with the same ``key`` was stored for its message before; ``also`` are
        further TransactWriteItems operations (a message update) that happen if and only if the event is new.
        ``settled``: nothing follows the event, so no later update is due."""
        expires = int((datetime.now(UTC) + self._retention).timestamp())
        item_key = event_key(tenant, event.message_id, key)
        item = self._item(event, tenant=tenant, key=key, settled=settled, expires=expires)
        put = {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                if also:
                    self._ddb.transact_write_items(TransactItems=[{"Put": put}, *also])
                else:
                    self._ddb.put_item(**put)
                self._count(tenant, event)
                return Recorded(event, new=True, settled=settled)
            except self._ddb.exceptions.ConditionalCheckFailedException:
                return self._duplicate(item_key, event)
            except self._ddb.exceptions.TransactionCanceledException as exc:
                reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return self._duplicate(item_key, event)
                if "ConditionalCheckFailed" in reasons[1:]:
                    raise ConcurrentMessageUpdateError(event.message_id) from exc
                if attempt == WRITE_ATTEMPTS or not _TRANSIENT_REASONS.intersection(reasons):
                    raise
            # Full jitter, so writers that conflicted once do not collide again in lockstep.
            time.sleep(random.uniform(0, _BACKOFF_BASE_S * 2**attempt))  # noqa: S311 - jitter, not a secret
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _count(self, tenant: str, event: Event) -> None:
        self._count_many(tenant, [event])

    def _count_many(self, tenant: str, events: list[Event]) -> None:
        """Add ``events`` to the hour's counters in ONE UpdateItem, whatever their number and types: a batch of the
        worker's events costs one counter write, not one per event. The shard is the first event's (spread like the
        feed), so concurrent batches of a busy tenant write different items."""
        if not events:
            return
        now = datetime.now(UTC)
        by_type: dict[str, int] = {}
        for event in events:
            by_type[event.type.value] = by_type.get(event.type.value, 0) + 1
        names = {f"#t{n}": kind for n, kind in enumerate(sorted(by_type))}
        values: dict[str, Any] = {f":n{n}": by_type[kind] for n, kind in enumerate(sorted(by_type))}
        values[":expires"] = int((now + max(self._retention, STATS_RETENTION)).timestamp())
        additions = ", ".join(f"#t{n} :n{n}" for n in range(len(names)))
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": stats_pk(tenant, feed_shard(events[0].id)), "sk": stats_hour(now)}),
                UpdateExpression=f"ADD {additions} SET expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
            )
        except Exception:  # noqa: BLE001 - statistics never fail an event (module docstring, "Hourly counts")
            logger.warning("could not count events", extra={"event_types": sorted(by_type)})

    def counts(self, tenant: str, *, hours: int, now: datetime | None = None) -> list[dict[str, int]]:
        """Per-type event counts of the last ``hours`` hours, newest hour first (index 0: the current hour)."""
        now = now or datetime.now(UTC)
        newest = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        buckets = [stats_hour(newest - timedelta(hours=n)) for n in range(hours)]
        totals: list[dict[str, int]] = [{} for _ in buckets]
        position = {hour: n for n, hour in enumerate(buckets)}

        def shard_items(shard: int) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            paginator = self._ddb.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues=to_item(
                    {":pk": stats_pk(tenant, shard), ":lo": buckets[-1], ":hi": buckets[0]}
                ),
            ):
                items.extend(from_item(item) for item in page.get("Items", []))
            return items

        for items in _feed_pool.map(shard_items, range(FEED_SHARDS)):
            for item in items:
                bucket = totals[position[item["sk"]]]
                for name, value in item.items():
                    if name not in ("pk", "sk", "expires_at"):
                        bucket[name] = bucket.get(name, 0) + int(value)
        return totals

    def record_fresh(self, events: list[tuple[Event, str]], *, tenant: str) -> list[Recorded]:
        """Store settled events (event, dedupe key) whose keys the caller knows are new, in BatchWriteItem requests of
        25: the same items :meth:`record` writes, without its condition (which costs a request per event). Items
        DynamoDB leaves unprocessed (throttling) are retried with backoff; what is still unwritten raises."""
        if not events:
            return []
        expires = int((datetime.now(UTC) + self._retention).timestamp())
        requests = [
            {"PutRequest": {"Item": self._item(event, tenant=tenant, key=key, settled=True, expires=expires)}}
            for event, key in events
        ]
        for start in range(0, len(requests), _BATCH_WRITE_MAX):
            pending: list[dict[str, Any]] = requests[start : start + _BATCH_WRITE_MAX]
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                response = self._ddb.batch_write_item(RequestItems={self._table: pending})
                pending = response.get("UnprocessedItems", {}).get(self._table, [])
                if not pending:
                    break
                if attempt == WRITE_ATTEMPTS:
                    raise EventWriteError(
                        f"{len(pending)} events left unprocessed after {attempt} BatchWriteItem tries"
                    )
                time.sleep(random.uniform(0, _BACKOFF_BASE_S * 2**attempt))  # noqa: S311 - jitter, not a secret
        self._count_many(tenant, [event for event, _ in events])
        return [Recorded(event, new=True, settled=True) for event, _ in events]

    def _item(self, event: Event, *, tenant: str, key: str, settled: bool, expires: int) -> dict[str, Any]:
        return to_item(
            {
                **event_key(tenant, event.message_id, key),
                "event_id": event.id,
                "doc": event.model_dump_json(),
                "settled": settled,
                "expires_at": expires,
                "feedpk": feed_pk(tenant, feed_shard(event.id)),
                "feedsk": event.id,
            }
        )

    def _duplicate(self, item_key: dict[str, str], event: Event) -> Recorded:
        item = self._ddb.get_item(TableName=self._table, Key=to_item(item_key), ConsistentRead=True).get("Item")
        if item is None:  # expired by TTL between the two calls: the first record is gone, this one is not stored
            return Recorded(event, new=False, settled=True)
        return Recorded(_event(item), new=False, settled=bool(from_item(item).get("settled", True)))

    def known(self, *, tenant: str, message_id: str, key: str) -> bool:
        """Whether an event was recorded under ``key`` (its follow-up may still be due: record it again to do that)."""
        item = self._ddb.get_item(
            TableName=self._table,
            Key=to_item(event_key(tenant, message_id, key)),
            ConsistentRead=True,
            ProjectionExpression="pk",
        ).get("Item")
        return item is not None

    def mark_settled(self, *, tenant: str, message_id: str, key: str) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item(event_key(tenant, message_id, key)),
            UpdateExpression="SET settled = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":t": True}),
        )

    # --- reading ------------------------------------------------------------------------------------------------
    def get(self, tenant: str, event_id: str) -> Event | None:
        response = self._ddb.query(
            TableName=self._table,
            IndexName=FEED_INDEX,
            KeyConditionExpression="feedpk = :pk AND feedsk = :id",
            ExpressionAttributeValues=to_item({":pk": feed_pk(tenant, feed_shard(event_id)), ":id": event_id}),
        )
        items = response.get("Items", [])
        return _event(items[0]) if items else None

    def timeline(self, message_id: str) -> list[Event]:
        """The message's events, oldest first (a message has few: they are sorted here rather than by the key)."""
        events: list[Event] = []
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :evt)",
            ExpressionAttributeValues=to_item({":pk": f"MSG#{message_id}", ":evt": "EVT#"}),
            ProjectionExpression="doc",
        ):
            events.extend(_event(item) for item in page.get("Items", []) if "doc" in item)
        return sorted(events, key=lambda event: event.id)

    def feed(self, tenant: str, *, after: str | None, limit: int, until_ms: int) -> FeedPage:
        """Events after the cursor ``after`` (an event id), oldest first, up to ``limit``, none made after
        ``until_ms``: one Query per shard (in parallel), merged by id."""
        oldest_ms = int((datetime.now(UTC) - self._retention).timestamp() * 1000)
        upper = boundary_id(until_ms)
        # Nothing at or below ``lower`` is handed out: the cursor itself, or anything past retention.
        lower = max(after or "", boundary_id(oldest_ms - 1))
        if lower >= upper:  # a cursor from the future (hand-made, or a clock far ahead): nothing is newer
            return FeedPage([], max(upper, after or ""), False)
        runs = list(
            _feed_pool.map(lambda shard: self._shard(tenant, shard, lower, upper, limit + 1), range(FEED_SHARDS))
        )
        # A shard cut short (1 MB per Query) is only known up to its last id: nothing after the smallest such id can
        # be handed out yet, or an event of that shard would be skipped.
        cut = min((run[-1].id for run, truncated in runs if truncated and run), default=None)
        merged = sorted((event for run, _ in runs for event in run), key=lambda event: event.id)
        ready = [event for event in merged if cut is None or event.id <= cut]
        has_more = len(ready) > limit or any(truncated for _, truncated in runs)
        events = ready[:limit]
        # When the page is not full, everything up to until_ms has been read: the next call can start there (an event
        # id made at or before until_ms is never larger than ``upper``).
        next_cursor = (events[-1].id if events else lower) if has_more else max(upper, after or "")
        return FeedPage(events, next_cursor, has_more)

    def _shard(self, tenant: str, shard: int, lower: str, upper: str, wanted: int) -> tuple[list[Event], bool]:
        """Up to ``wanted`` events of one shard above ``lower``, and whether the shard has more in range."""
        response = self._ddb.query(
            TableName=self._table,
            IndexName=FEED_INDEX,
            KeyConditionExpression="feedpk = :pk AND feedsk BETWEEN :lo AND :hi",
            ExpressionAttributeValues=to_item({":pk": feed_pk(tenant, shard), ":lo": lower, ":hi": upper}),
            ScanIndexForward=True,
            Limit=wanted + 1,  # BETWEEN is inclusive; the cursor itself may come back and is not handed out
        )
        events = [_event(item) for item in response.get("Items", []) if item["feedsk"]["S"] != lower]
        truncated = "LastEvaluatedKey" in response and len(events) < wanted
        return events[:wanted], truncated
