"""The console's Activity list: items ``GET /v1/messages`` reads per page at 1 000 and 100 000 messages (a count, not
a time), and the first paint of Activity in headless chromium with 10 000 messages.

    .venv/bin/python bench/console_paging.py                       # 1000 and 100000, then first paint at 10000
    .venv/bin/python bench/console_paging.py --sizes 1000 --paint 0

**Items read per page.** For each size the tenant's messages are bulk-written (the items ``MessageStore.create``
writes, 25 per BatchWriteItem) into moto in-process, and pages are fetched through the real send API handler. Every
DynamoDB Query the handler makes is counted (its ``ScannedCount``, summed per request, through a botocore event hook):
that is what a page reads, and what DynamoDB's latency and cost follow. Cases: the first page (25), a page ten
cursors deep, a recipient filter that matches every 100th message, and a status no message has (the worst case: the
read budget, ``LIST_READ_BUDGET``, bounds it). The reference is the same page at 1 000 messages; the target is the
same count at 100 000. (moto's *time* per Query grows with the table - it walks every item in Python - so time is not
the measure here; bench/mailbox_paging.py shows that effect for the mailbox index.)

**First paint.** A local stack (``postroom local``'s harness, sandbox on) is filled with 10 000 messages the same
way; chromium opens ``/console#/activity`` with the key already in sessionStorage, and the page reports
``performance.now()`` when the first page of rows is in the DOM (navigation start → rows shown), and the browser's
first-contentful-paint entry. Median of ``--repeat`` loads.

Measured 2026-12-02 on the shared 2-core machine (load average 8-13):

| messages | first page (25) | page 11 | recipient, 1 in 100 | status none match |
|---:|---:|---:|---:|---:|
| 1,000 | 26 items, 1 Query | 26 items, 1 Query | 1000 items (10 found), 6 Queries | 1000 items, 6 Queries |
| 100,000 | 26 items, 1 Query | 26 items, 1 Query | 1001 items (10 found), 6 Queries | 1001 items, 6 Queries |

First paint at 10 000 messages: rows shown 785 ms after navigation start, first contentful paint 144 ms (median of 7).
Not part of the test suite (the 100 000 fill takes about five minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TENANT = "default"


def records(count: int) -> list[Any]:
    from postroom.core.message_record import MessageRecord, RecipientState
    from postroom.core.status import MessageStatus

    base = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for n in range(count):
        at = (base + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
        out.append(
            MessageRecord(
                id=f"msg_{n:026d}",
                tenant=TENANT,
                status=MessageStatus.DELIVERED,
                from_address="orders@shop.example",
                subject=f"Your order #{n}",
                delivery="smtp",
                message_id_header=f"<{n}@shop.example>",
                recipients=[RecipientState(address=f"c{n % 100}@example.org")],
                created_at=at,
                updated_at=at,
            )
        )
    return out


def fill(dynamodb: Any, table: str, count: int) -> float:
    from postroom.core.message_store import MessageStore

    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for record in records(count):
        batch.append({"PutRequest": {"Item": MessageStore._item(record)}})
        if len(batch) == 25:
            dynamodb.batch_write_item(RequestItems={table: batch})
            batch = []
    if batch:
        dynamodb.batch_write_item(RequestItems={table: batch})
    return time.perf_counter() - started


class ReadCounter:
    """Sums ScannedCount over the DynamoDB Queries made between two reads of :attr:`items`."""

    def __init__(self, client: Any) -> None:
        self.items = 0
        self.queries = 0
        client.meta.events.register("after-call.dynamodb.Query", self._count)

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.items += int(parsed.get("ScannedCount", 0))
        self.queries += 1

    def take(self) -> tuple[int, int]:
        taken = self.items, self.queries
        self.items = self.queries = 0
        return taken


def paging(sizes: list[int]) -> list[dict[str, Any]]:
    import boto3
    from moto import mock_aws

    from postroom.core import aws
    from postroom.core.auth import ALL_SCOPES
    from postroom.local import template as tpl
    from postroom.local.gateway import build_event
    from postroom.local.handlers import LocalFunction
    from postroom.wiring.services import reset_services, services

    template = tpl.load_template(ROOT / "template.yaml")
    props = template["Resources"]["SendApiFunction"]["Properties"]
    rows = []
    for size in sizes:
        with mock_aws():
            session = boto3.session.Session(region_name="us-east-1")
            params = {**tpl.parameter_defaults(template), "SendingDomains": "shop.example"}
            resources = tpl.create_resources(template, session, parameters=params, prefix=f"bench{size}")
            os.environ.update(tpl.function_environment(template, "SendApiFunction", resources, params))
            reset_services()
            api = LocalFunction("SendApiFunction", ROOT / props["CodeUri"] / "app.py", "lambda_handler", 29, 512)
            key = services().keys.create(name="bench", scopes=ALL_SCOPES, tenant=TENANT)
            ddb = aws.client("dynamodb")
            fill_s = fill(ddb, services().settings.table, size)
            counter = ReadCounter(ddb)

            def page(query: str, key: str = key, api: LocalFunction = api) -> dict[str, Any]:
                event = build_event(
                    method="GET",
                    path="/v1/messages",
                    resource="/v1/messages",
                    query=query,
                    headers=[("Authorization", f"Bearer {key}")],
                    body=b"",
                    source_ip="127.0.0.1",
                    path_parameters={},
                    stage="api",
                )
                result = api.invoke(event)
                assert result["statusCode"] == 200, result["body"]
                return dict(json.loads(result["body"]))

            counter.take()
            first = page("limit=25")
            first_read = counter.take()
            cursor = first["next"]
            for _ in range(9):
                cursor = page(f"limit=25&cursor={cursor}")["next"]
            counter.take()
            deep = page(f"limit=25&cursor={cursor}")
            deep_read = counter.take()
            recipient = page("limit=25&recipient=c7%40example.org")
            recipient_read = counter.take()
            none = page("limit=25&status=bounced")
            none_read = counter.take()
            assert len(first["data"]) == 25
            assert len(deep["data"]) == 25
            assert all(m["to"] == ["c7@example.org"] for m in recipient["data"])
            assert none["data"] == []
            rows.append(
                {
                    "messages": size,
                    "fill_s": round(fill_s, 1),
                    "first_page": first_read,
                    "page_11": deep_read,
                    "recipient_1_in_100": (*recipient_read, len(recipient["data"])),
                    "status_none_match": none_read,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def first_paint(count: int, repeat: int) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from postroom.core import aws
    from postroom.local.stack import LocalStack, StackConfig
    from postroom.wiring.services import services

    outbox = Path(tempfile.mkdtemp(prefix="console-bench-"))
    stack = LocalStack(StackConfig(api_port=0, outbox=outbox, parameters={"SendingDomains": "shop.example"}))
    stack.start()
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1100", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        fill_s = fill(aws.client("dynamodb"), services().settings.table, count)
        driver.get(stack.api_url + "/console")
        driver.execute_script("sessionStorage.setItem('postroom.key', arguments[0])", stack.api_key)
        shown, paints = [], []
        for _ in range(repeat):
            driver.get("about:blank")
            driver.get(stack.api_url + "/console#/activity")
            WebDriverWait(driver, 60).until(lambda d: len(d.find_elements("css selector", "#rows tr a")) == 25)
            shown.append(driver.execute_script("return performance.now()"))
            paints.append(
                driver.execute_script(
                    "const p = performance.getEntriesByName('first-contentful-paint');"
                    " return p.length ? p[0].startTime : null"
                )
            )
        return {
            "messages": count,
            "fill_s": round(fill_s, 1),
            "rows_shown_ms": round(statistics.median(shown), 1),
            "first_contentful_paint_ms": round(statistics.median(p for p in paints if p is not None), 1),
            "loads": repeat,
        }
    finally:
        driver.quit()
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--paint", type=int, default=10_000, help="messages for the first-paint run (0: skip)")
    parser.add_argument("--repeat", type=int, default=7)
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
    rows = paging(args.sizes) if args.sizes else []
    print()
    print("| messages | first page (25) | page 11 | recipient, 1 in 100 | status none match |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        rec = r["recipient_1_in_100"]
        print(
            f"| {r['messages']:,} | {r['first_page'][0]} items, {r['first_page'][1]} Query | "
            f"{r['page_11'][0]} items, {r['page_11'][1]} Query | {rec[0]} items ({rec[2]} found), {rec[1]} Queries | "
            f"{r['status_none_match'][0]} items, {r['status_none_match'][1]} Queries |"
        )
    if args.paint:
        for name in list(os.environ):
            if name.startswith("POSTROOM_") or name == "AWS_ENDPOINT_URL":
                del os.environ[name]
        print(json.dumps(first_paint(args.paint, args.repeat)), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
