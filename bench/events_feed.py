"""Events: DynamoDB Queries per feed page and write units per recorded event (issue 21, goals 2 and 3).

Counted, not timed: a botocore ``before-parameter-build`` hook sees every DynamoDB call the store makes (with its
API parameters), so the figures are the same on any machine. Write units are computed as AWS bills them: per
item ceil(size / 1 KB) (DynamoDB's item-size rules: attribute names plus values), doubled for the items of a
TransactWriteItems, plus one entry per GSI the item lands in (its keys and projected attributes), plus UpdateItems
(the larger of the item before and after; ``settled`` is not projected, so it writes no index entry where the index
projects only ``doc``).

Runs against moto in-process with the table built from the ``template.yaml`` next to the imported ``postroom``
package, so it measures whichever checkout is on the path: ``PYTHONPATH=<old checkout>/src`` gives the "before".
The 100 000-event feed is generated straight into the table (BatchWriteItem, in the layout of the store under test).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

import postroom
from postroom.core.clock import now_iso
from postroom.core.dynamo import to_item
from postroom.events import event_store as store_module
from postroom.events.event_model import Event, EventType, new_event_id
from postroom.events.event_store import EventStore
from postroom.events.recorder import EventRecorder, Pending
from postroom.local.template import load_template
from postroom.suppression.suppression_store import SuppressionStore
from postroom.webhooks.fanout import WebhookFanout
from postroom.webhooks.subscriptions import WebhookStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

TABLE = "bench-events"
TENANT = "bench"
DAY_MS = 86_400_000


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return math.ceil(len(inner.lstrip("-").replace(".", "")) / 2) + 1
    if kind == "BOOL" or kind == "NULL":
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_size(v) for v in inner)
    return len(str(inner))


def item_size(item: dict[str, Any], names: set[str] | None = None) -> int:
    return sum(len(k.encode()) + _value_size(v) for k, v in item.items() if names is None or k in names)


def units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


class Meter:
    """Counts DynamoDB operations and write units through botocore's event hooks."""

    def __init__(self, client: Any, indexes: list[dict[str, Any]], table_keys: set[str]) -> None:
        self.calls: Counter[str] = Counter()
        self.write_units = 0
        self._indexes = indexes
        self._table_keys = table_keys
        self._client = client
        client.meta.events.register("before-parameter-build.dynamodb", self._before)

    def reset(self) -> None:
        self.calls.clear()
        self.write_units = 0

    def _index_units(self, item: dict[str, Any]) -> int:
        total = 0
        for index in self._indexes:
            keys = {k["AttributeName"] for k in index["KeySchema"]}
            if not keys <= item.keys():
                continue  # a sparse index: the item is not in it
            projection = index["Projection"]
            if projection["ProjectionType"] == "ALL":
                names = None
            else:
                names = keys | self._table_keys | set(projection.get("NonKeyAttributes", []))
            total += units(item_size(item, names))
        return total

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        self.calls[name] += 1
        if name == "PutItem":
            self.write_units += units(item_size(params["Item"])) + self._index_units(params["Item"])
        elif name == "TransactWriteItems":
            for operation in params["TransactItems"]:
                if "Put" in operation:
                    item = operation["Put"]["Item"]
                    # Transactions bill each item twice (prepare and commit), index entries included.
                    self.write_units += 2 * (units(item_size(item)) + self._index_units(item))
                else:
                    self.write_units += 2  # an update or condition check of a small item
        elif name == "UpdateItem":
            current = self._client.get_item(TableName=params["TableName"], Key=params["Key"]).get("Item", {})
            self.calls["GetItem"] -= 1  # the meter's own read
            self.write_units += units(item_size(current))
            updated = set(params.get("ExpressionAttributeValues", {}))
            if updated and any(
                i["Projection"]["ProjectionType"] == "ALL"
                and {k["AttributeName"] for k in i["KeySchema"]} <= current.keys()
                for i in self._indexes
            ):
                self.write_units += units(item_size(current))  # the update is copied into an ALL index


def table_properties() -> dict[str, Any]:
    template = load_template(Path(postroom.__file__).resolve().parents[2] / "template.yaml")
    return template["Resources"]["Table"]["Properties"]


def create_table(client: Any) -> list[dict[str, Any]]:
    props = table_properties()
    indexes = [
        {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
        for index in props["GlobalSecondaryIndexes"]
    ]
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=indexes,
        BillingMode="PAY_PER_REQUEST",
    )
    return indexes


def make_event(ms: int, message: int) -> Event:
    stamp = now_iso()
    return Event(
        id=new_event_id(ms),
        type=EventType.DELIVERED,
        message_id=f"msg_{message:026d}",
        recipient="ann@example.org",
        occurred_at=stamp,
        recorded_at=stamp,
        source="smtp",
        details={"smtp_code": 250, "reply": "250 2.0.0 Ok: queued as 4Xq1", "mx_host": "mx.example.org", "tls": True},
    )


def raw_item(event: Event, expires: int) -> dict[str, Any]:
    """The feed's item for ``event`` in the layout of the store under test (for bulk generation)."""
    doc = event.model_dump_json()
    if hasattr(store_module, "feed_shard"):  # one item per event, feed GSI by tenant + shard
        return to_item(
            {
                **store_module.event_key(TENANT, event.message_id, event.id),
                "event_id": event.id,
                "doc": doc,
                "settled": True,
                "expires_at": expires,
                "feedpk": store_module.feed_pk(TENANT, store_module.feed_shard(event.id)),
                "feedsk": event.id,
            }
        )
    return to_item({"pk": store_module.feed_pk(TENANT, event.id), "sk": event.id, "doc": doc, "expires_at": expires})


def fill(client: Any, count: int, now_ms: int, spread_ms: int) -> None:
    expires = int(time.time()) + 30 * 86_400
    batch: list[dict[str, Any]] = []
    for n in range(count):
        ms = now_ms - spread_ms + (spread_ms * n) // count
        batch.append({"PutRequest": {"Item": raw_item(make_event(ms, n), expires)}})
        if len(batch) == 25:
            client.batch_write_item(RequestItems={TABLE: batch})
            batch = []
    if batch:
        client.batch_write_item(RequestItems={TABLE: batch})


def feed_figures(client: Any, meter: Meter, store: EventStore, limit: int) -> dict[str, int]:
    until_ms = int(time.time() * 1000)
    meter.reset()
    first = store.feed(TENANT, after=None, limit=limit, until_ms=until_ms)
    without_cursor = meter.calls["Query"]
    meter.reset()
    second = store.feed(TENANT, after=first.next_cursor, limit=limit, until_ms=until_ms)
    with_cursor = meter.calls["Query"]
    if len(first.events) != limit or len(second.events) != limit or first.events[-1].id >= second.events[0].id:
        raise SystemExit("the feed returned short or overlapping pages")
    return {"queries_without_cursor": without_cursor, "queries_with_cursor": with_cursor}


def write_figures(client: Any, meter: Meter, *, webhooks: bool, count: int) -> float:
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="bench-webhooks")["QueueUrl"]
    tenant = f"writer-{int(webhooks)}"
    subscriptions = WebhookStore(client, TABLE)
    if webhooks:
        subscriptions.create(
            tenant, url="https://example.org/hook", event_types=["delivered"], secret="s" * 32, description=None
        )
    recorder = EventRecorder(
        events=EventStore(client, TABLE),
        suppressions=SuppressionStore(client, TABLE),
        fanout=WebhookFanout(subscriptions, sqs, queue_url),
    )
    now_ms = int(time.time() * 1000)
    meter.reset()
    for n in range(count):
        event = make_event(now_ms + n, 10_000_000 + n)
        recorder.record(tenant, [Pending(event, key=f"attempt:{event.message_id}:1:ann@example.org")])
    return meter.write_units / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--label", default="after")
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    results: dict[str, Any] = {"label": args.label, "feed": {}, "write_units_per_event": {}}
    for size in [int(s) for s in args.sizes.split(",")]:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            indexes = create_table(client)
            meter = Meter(client, indexes, {"pk", "sk"})
            # Recent traffic, as in the run: everything within the last day, 31 days of retention walked.
            fill(client, size, int(time.time() * 1000) - 60_000, DAY_MS // 2)
            figures = feed_figures(client, meter, EventStore(client, TABLE), args.limit)
            results["feed"][str(size)] = figures
            print(f"{args.label}: {size:>7} events, page of {args.limit}: {figures}", flush=True)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        indexes = create_table(client)
        meter = Meter(client, indexes, {"pk", "sk"})
        for webhooks in (False, True):
            per_event = write_figures(client, meter, webhooks=webhooks, count=50)
            results["write_units_per_event"]["with_webhook" if webhooks else "no_webhook"] = per_event
            print(
                f"{args.label}: write units per event ({'a' if webhooks else 'no'} webhook subscription): "
                f"{per_event:.2f}; calls {dict(meter.calls)}",
                flush=True,
            )
    print(json.dumps(results))
    save(f"events_feed_{args.label}", results)


if __name__ == "__main__":
    main()
