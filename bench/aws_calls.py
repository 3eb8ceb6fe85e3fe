"""AWS requests per accepted and per delivered message, counted exactly with botocore's event hooks (issue 21).

A count, not a time: deterministic, and the figure that drives Lambda time and the request-priced part of the AWS
bill. The emulated stack of the test suite (moto in-process, resources from template.yaml, the real handlers) with
direct SMTP to an aiosmtpd sink on loopback whose MX a loopback DNS server answers. Every API call any boto3 client
makes inside a handler invocation is counted once (``before-parameter-build``: botocore's own retries are not
counted apart, so the figure is requests as the caller makes them; throttling retries would add to it on AWS).

Scenarios (each message 10 KB of text, one batch = the SQS event source's BatchSize of 10):

* ``accept``: ``POST /v1/messages`` through the send API handler, calls per request, after one warm-up request;
* ``batch of 10, 1 recipient, one domain``: the worker handler on one batch of 10 queued messages;
* ``batch of 10, 5 recipients, one domain`` and ``batch of 10, 1 recipient, 10 domains``.

Pacing is on at 1 000 messages/s per domain, so no window fills and the count does not depend on the clock (at the
template's default of 10/s, a batch of 10 that starts in a second its predecessor used is refused that window and
takes the next one: one UpdateItem more per batch, 2.9 instead of 2.8, measured).

Targets: ≤ 3 calls per delivered message in a batch of 10 to one domain (≤ 4 + 1 per extra recipient), accept ≤ 3.

    .venv/bin/python bench/aws_calls.py            # prints the table, keeps bench/results/aws_calls.json
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from typing import Any

from _common import ROOT, machine, save

sys.path.insert(0, str(ROOT))  # for tests.conftest: the same emulated stack the suite uses

SENDER = "Shop <orders@shop.example>"
DOMAINS = [f"d{i}.example" for i in range(10)]
BATCH = 10
PACE_PER_SECOND = 1000
# The same script on main at ead35c2, before issue 21's batching (counts do not depend on the machine or its load).
# Accept read the API key's item on every request there (a GetItem), hence 4.
BEFORE = {
    "accept (POST /v1/messages)": 4.0,
    "batch of 10, 1 recipient, one domain": 12.0,
    "batch of 10, 5 recipients, one domain": 16.0,
    "batch of 10, 1 recipient, 10 domains": 12.9,
}
TARGETS = {
    "accept (POST /v1/messages)": 3.0,
    "batch of 10, 1 recipient, one domain": 3.0,
    "batch of 10, 5 recipients, one domain": 8.0,  # 4 + 1 per extra recipient
}


class CallCounter:
    """Counts every botocore API call made while ``active`` (registered on the default session before any client is
    made: each client copies the session's event handlers when it is created)."""

    def __init__(self) -> None:
        self.active = False
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.active:
            self.calls[f"{model.service_model.service_name}.{model.name}{_what(params)}"] += 1

    def take(self) -> Counter[str]:
        calls, self.calls = self.calls, Counter()
        return calls


def _what(params: dict[str, Any]) -> str:
    """Which item kind a single-item DynamoDB call touches (the key's prefix), so the table shows what each call is."""
    key = params.get("Key") or params.get("Item") or {}
    if not isinstance(key, dict):  # S3's Key is the object's name
        return ""
    pk = key.get("pk", {}).get("S") if isinstance(key.get("pk"), dict) else None
    if pk:
        return f"({pk.split('#')[0]})"
    if "id" in key:  # Powertools idempotency records
        return "(idempotency)"
    return ""


def zone() -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for domain in DOMAINS:
        records[domain] = {"MX": [(10, f"mx.{domain}")]}
        records[f"mx.{domain}"] = {"A": ["127.0.0.1"]}
    return records


def main() -> None:
    warnings.simplefilter("ignore")
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR",
        POWERTOOLS_METRICS_NAMESPACE="Postroom",
    )  # fmt: skip
    import boto3
    import pytest
    from moto import mock_aws
    from tests.conftest import start_stack

    from postroom.core import aws
    from postroom.local.poller import build_sqs_event
    from postroom.testing.dns_server import LoopbackDnsServer
    from postroom.testing.smtp_peers import RecordingSink

    counter = CallCounter()
    text = ("Thank you for your order. " * 40 + "\n") * 10  # ~10 KB
    rows: list[dict[str, Any]] = []
    with (
        mock_aws(),
        pytest.MonkeyPatch.context() as monkeypatch,
        RecordingSink() as sink,
        LoopbackDnsServer(zone=zone()) as dns,
    ):
        # mock_aws drops boto3's default session on entry, so the hook goes on the one made here, before any client.
        boto3.setup_default_session(region_name="us-east-1")
        boto3.DEFAULT_SESSION.events.register("before-parameter-build", counter)  # type: ignore[union-attr]
        aws.reset_clients()
        stack = start_stack(
            monkeypatch,
            {
                "DefaultDelivery": "smtp",
                "DnsNameservers": f"127.0.0.1:{dns.port}",
                "SmtpPort": str(sink.port),
                # Pacing stays on, with room: at the default 10/s a batch that meets a window its predecessor used
                # takes its slots message by message, and the count would depend on the clock.
                "SmtpDomainRatePerSecond": str(PACE_PER_SECOND),
            },
        )
        sqs = boto3.client("sqs")
        url, arn = stack.resources["DeliveryQueue"]["Ref"], stack.resources["DeliveryQueue"]["Arn"]

        def send(to: list[str]) -> None:
            status, body = stack.request(
                "POST", "/v1/messages", {"from": SENDER, "to": to, "subject": "Order", "text": text}
            )
            assert status == 202, body

        def drain() -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = []
            while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
                "Messages", []
            ):
                messages += batch
            return messages

        def deliver(name: str, recipients: list[list[str]]) -> None:
            for to in recipients:
                send(to)
            messages = drain()
            assert len(messages) == len(recipients), len(messages)
            before = len(sink.messages)
            counter.active = True
            result = stack.worker.invoke(build_sqs_event(messages, arn, "us-east-1"))
            counter.active = False
            assert not result.get("batchItemFailures"), result
            assert len(sink.messages) - before == sum(len({t.split("@")[1] for t in to}) for to in recipients)
            calls = counter.take()
            total = sum(calls.values())
            rows.append({"scenario": name, "messages": len(recipients), "calls": total,
                         "per_message": total / len(recipients), "by_operation": dict(calls)})  # fmt: skip

        # The first request and the first batch warm the caches of the execution environment (as on AWS, where
        # one environment serves many invocations); they are not counted.
        send(["warm@d0.example"])
        stack.worker.invoke(build_sqs_event(drain(), arn, "us-east-1"))
        counter.take()

        counter.active = True
        for i in range(BATCH):
            send([f"buyer{i}@d0.example"])
        counter.active = False
        calls = counter.take()
        rows.append({"scenario": "accept (POST /v1/messages)", "messages": BATCH, "calls": sum(calls.values()),
                     "per_message": sum(calls.values()) / BATCH, "by_operation": dict(calls)})  # fmt: skip
        drain_and_deliver = drain()
        stack.worker.invoke(build_sqs_event(drain_and_deliver, arn, "us-east-1"))
        counter.take()

        deliver("batch of 10, 1 recipient, one domain", [[f"a{i}@d0.example"] for i in range(BATCH)])
        deliver(
            "batch of 10, 5 recipients, one domain",
            [[f"b{i}-{k}@d0.example" for k in range(5)] for i in range(BATCH)],
        )
        deliver("batch of 10, 1 recipient, 10 domains", [[f"c{i}@{DOMAINS[i]}"] for i in range(BATCH)])

    print(f"AWS calls per message, counted with botocore's before-parameter-build hook ({machine()})")
    for row in rows:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(row["by_operation"].items()))
        name = row["scenario"]
        target = TARGETS.get(name)
        verdict = f", target ≤ {target:g}: {'met' if row['per_message'] <= target else 'MISSED'}" if target else ""
        print(
            f"  {name}: {row['per_message']:.1f} per message (before: {BEFORE[name]:.1f}{verdict}; "
            f"{row['calls']} calls)  [{ops}]"
        )
    save("aws_calls", {"rows": rows})


if __name__ == "__main__":
    main()
