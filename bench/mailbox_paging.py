"""Time to page 50 messages of a mailbox holding 1 000 and 100 000 messages, against moto (server mode, over HTTP,
as the local stack runs it).

    .venv/bin/python bench/mailbox_paging.py                 # 1000 and 100000
    .venv/bin/python bench/mailbox_paging.py --sizes 1000 10000 --repeat 30

For each size it bulk-loads the mailbox (MailboxStore.import_messages), then times, through the real mailbox API
handler and through the store's Query alone: the first page, a page 10 cursors deep, and a filtered page
(unread=true). It also prints DynamoDB's ScannedCount per page: the items a page reads, which is what DynamoDB's
latency and cost follow. On DynamoDB a key-condition Query with Limit reads only its page; moto's Query walks every
item of the *table* in Python and sorts the partition (moto/dynamodb/models/table.py, Table.query), so moto's *time*
grows with the table while the items a page reads do not.

Measured on the 2-core dev machine (moto 5.2.5, server mode):

| messages | API: first page | API: page 11 | API: unread page | Query alone | items read (first / unread) |
|---:|---:|---:|---:|---:|---:|
| 1,000 | 104.3 ms | 104.7 ms | 140.6 ms | 91.8 ms | 51 / 200 |
| 100,000 | 1561.4 ms | 1334.6 ms | 1284.8 ms | 1282.8 ms | 51 / 200 |
Not part of the test suite (the 100 000 fill takes a minute or two).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def entry(n: int, base: datetime) -> dict:
    from postroom.mailbox.mailbox_store import mail_ulid

    received = base + timedelta(seconds=n)
    return {
        "id": "eml_" + mail_ulid(int(received.timestamp() * 1000), "bench", str(n)),
        "receipt": "bench",
        "recipient": "support@shop.example",
        "address": "support@shop.example",
        "received_at": received.isoformat(),
        "size": 2048,
        "subject": f"Order {n} - where is my parcel?",
        "from": [{"name": "Customer", "email": f"c{n % 500}@example.org"}],
        "to": [{"name": "", "email": "support@shop.example"}],
        "cc": [],
        "has_attachments": n % 7 == 0,
        "keywords": ["$seen"] if n % 3 else [],
        "preview": "Hello, I ordered last week and " * 4,
        "flags": [],
        "origin": "ses",
        "from_search": f"customer <c{n % 500}@example.org>",
        "to_search": " <support@shop.example>",
        "subject_search": f"order {n} - where is my parcel?",
    }


def timed(call, repeat: int) -> tuple[float, object]:
    samples = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
    )
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log

    from postroom.core import aws
    from postroom.core.auth import ALL_SCOPES
    from postroom.local import template as tpl
    from postroom.local.gateway import build_event
    from postroom.local.handlers import LocalFunction
    from postroom.mailbox.mailbox_store import Filters, MailboxStore
    from postroom.wiring.services import reset_services, services

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    template = tpl.load_template(ROOT / "template.yaml")
    props = template["Resources"]["MailboxApiFunction"]["Properties"]
    api = LocalFunction("MailboxApiFunction", ROOT / props["CodeUri"] / "app.py", "lambda_handler", 29, 512)
    rows = []
    try:
        for size in args.sizes:
            session = boto3.session.Session(region_name="us-east-1")
            params = {"SendingDomains": "shop.example", "InboundDomains": "shop.example"}
            resources = tpl.create_resources(template, session, parameters=params, prefix=f"bench{size}")
            os.environ.update(tpl.function_environment(template, "MailboxApiFunction", resources, params))
            reset_services()
            key = services().keys.create(name="bench", scopes=ALL_SCOPES, mailboxes=frozenset({"*"}))
            store = MailboxStore(aws.client("dynamodb"), services().settings.table)
            store.create_address("support@shop.example")
            box = "support@shop.example:inbox"
            base = datetime(2024, 1, 1, tzinfo=UTC)
            started = time.perf_counter()
            for start in range(0, size, 5000):
                store.import_messages(box, [entry(n, base) for n in range(start, min(size, start + 5000))])
            fill_s = time.perf_counter() - started

            def via_api(query: str, key: str = key, box: str = box) -> dict:
                headers = [("Authorization", f"Bearer {key}")]
                path = f"/v1/mailboxes/{box}/messages"
                event = build_event(
                    method="GET",
                    path=path,
                    resource=path,
                    query=query,
                    headers=headers,
                    body=b"",
                    source_ip="127.0.0.1",
                    path_parameters={},
                    stage="api",
                )
                result = api.invoke(event)
                assert result["statusCode"] == 200, result["body"]
                return json.loads(result["body"])

            api_first, first = timed(lambda: via_api("limit=50"), args.repeat)
            cursor = None
            for _ in range(10):
                cursor = via_api(f"limit=50{'&cursor=' + cursor if cursor else ''}")["next_cursor"]
            api_deep, _ = timed(lambda cursor=cursor: via_api(f"limit=50&cursor={cursor}"), args.repeat)
            api_unread, _ = timed(lambda: via_api("limit=50&unread=true"), args.repeat)
            store_first, page = timed(lambda store=store, box=box: store.page(box, limit=50), args.repeat)
            unread_page = store.page(box, limit=50, filters=Filters(unread=True))
            assert len(first["messages"]) == 50
            rows.append(
                {
                    "messages": size,
                    "fill_s": round(fill_s, 1),
                    "api_first_page_ms": round(api_first, 1),
                    "api_page_11_ms": round(api_deep, 1),
                    "api_unread_page_ms": round(api_unread, 1),
                    "store_query_ms": round(store_first, 1),
                    "items_read_first_page": page.scanned,
                    "items_read_unread_page": unread_page.scanned,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.stop()
    print()
    print(
        "| messages | API: first page | API: page 11 | API: unread page | Query alone | items read (first / unread) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        api = f"{r['api_first_page_ms']} ms | {r['api_page_11_ms']} ms | {r['api_unread_page_ms']} ms"
        store = f"{r['store_query_ms']} ms | {r['items_read_first_page']} / {r['items_read_unread_page']}"
        print(f"| {r['messages']:,} | {api} | {store} |")


if __name__ == "__main__":
    main()
