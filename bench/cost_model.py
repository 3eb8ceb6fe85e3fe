"""Cost model: US dollars per million mails on AWS *beyond SES's own price*, from template.yaml and measured
durations.

Reads from ``template.yaml``: each function's memory (``Globals.Function.MemorySize`` or its own), architecture,
the worker's SQS ``BatchSize``, tracing, and the bodies' retention (``BodyRetentionDays`` default). Takes as inputs
the measured billed durations of one send API invocation and of one worker batch, and the message size.

Per mail it counts: API Gateway (REST) request; send API invocation (request + GB-seconds); DynamoDB on-demand
writes/reads (key lookup, record create, 2 record saves per attempt, each also written to the ``gsi1`` index);
S3 PUT/GET (request body, built MIME) and storage for the retention period; SQS requests (send, the event source's
receive and delete per batch); the worker invocation's share of its batch; CloudWatch Logs ingestion; X-Ray traces
(Tracing: Active, default sampling). Not counted: SES itself, data transfer out, a NAT gateway for direct SMTP
(about $0.045/h + $0.045/GB: fixed cost, see the README), free tiers.

Prices: us-east-1, on-demand, as published on the AWS pricing pages (PRICES_AS_OF below). Check them before quoting.

    .venv/bin/python bench/cost_model.py --send-ms 45 --worker-batch-ms 400 [--message-kb 10] [--attempts 1.05]

``--design before`` prices the per-message AWS work as it was before issue 21's batching (an API-key GetItem per
request; per attempt a record GetItem, two PutItem saves, S3 reads of the MIME - a miss the first time - and of the
request); ``after`` (the default) as it is now (the key read once per 30 s per environment: ~0 per mail at volume;
the batch's records read by BatchGetItem, the same read units; the two saves as TransactWriteItems, which AWS bills at
twice the write units on the base table; no S3 read on a first attempt, the MIME read on a retry). The calls per
message themselves are counted by ``bench/aws_calls.py``; the send guard's and the events' writes are outside this
model in both designs (as they were).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import yaml
from _common import RESULTS, ROOT

PRICES_AS_OF = "2025-06 (us-east-1 on-demand list prices)"
PRICES = {
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_s_arm64": 0.0000133334,  # per GB-second, first 7.5 B GB-s/month tier
    "lambda_gb_s_x86_64": 0.0000166667,
    "apigw_rest_request": 3.50 / 1e6,  # REST API, first 333 M requests/month
    "ddb_write_unit": 0.625 / 1e6,  # on-demand write request unit (1 KB)
    "ddb_read_unit": 0.125 / 1e6,  # on-demand read request unit (4 KB strongly consistent)
    "ddb_storage_gb_month": 0.25,
    "s3_put": 0.005 / 1000,  # PUT/COPY/POST/LIST per request, S3 Standard
    "s3_get": 0.0004 / 1000,
    "s3_storage_gb_month": 0.023,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "logs_ingest_gb": 0.50,
    "xray_trace_recorded": 5.00 / 1e6,
}


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_Loader.add_multi_constructor("!", _tag)


def template_facts(path: Path) -> dict[str, object]:
    template = yaml.load(path.read_text(), Loader=_Loader)
    glob = template.get("Globals", {}).get("Function", {})
    resources = template["Resources"]

    def function(logical_id: str) -> dict[str, object]:
        props = resources[logical_id]["Properties"]
        arch = (props.get("Architectures") or glob.get("Architectures") or ["x86_64"])[0]
        return {"memory_mb": int(props.get("MemorySize", glob.get("MemorySize", 128))), "architecture": arch}

    worker_events = resources["WorkerFunction"]["Properties"].get("Events", {})
    batch = next((e["Properties"].get("BatchSize", 10) for e in worker_events.values() if e.get("Type") == "SQS"), 10)
    retention = int(template.get("Parameters", {}).get("BodyRetentionDays", {}).get("Default", 30))
    return {
        "send_api": function("SendApiFunction"),
        "worker": function("WorkerFunction"),
        "batch_size": int(batch),
        "body_retention_days": retention,
        "tracing": glob.get("Tracing", "PassThrough"),
    }


def billed_ms(ms: float) -> float:
    return math.ceil(ms)  # Lambda bills per 1 ms


def per_mail(facts: dict[str, object], args: argparse.Namespace) -> dict[str, float]:
    p = PRICES
    send, worker = facts["send_api"], facts["worker"]
    batch = facts["batch_size"]
    attempts = args.attempts
    kb = args.message_kb
    gb_s = {a: p[f"lambda_gb_s_{a}"] for a in ("arm64", "x86_64")}
    record_kb = 1.5 + 0.3 * args.recipients  # the JSON record document plus keys and index attributes
    ddb_record_wcu = math.ceil(record_kb)  # per write of the record, base table
    after = args.design == "after"
    key_reads = 0.0 if after else 1.0
    # A record save: base table (doubled inside a transaction) + its gsi1 entry (standard units).
    save_wcu = ddb_record_wcu * (2 if after else 1) + ddb_record_wcu
    s3_gets = (attempts - 1) if after else (1 + attempts)
    cost = {
        "API Gateway request": p["apigw_rest_request"],
        "send API Lambda": p["lambda_request"]
        + billed_ms(args.send_ms) / 1000 * send["memory_mb"] / 1024 * gb_s[send["architecture"]],
        "worker Lambda (share of a batch)": (
            p["lambda_request"]
            + billed_ms(args.worker_batch_ms) / 1000 * worker["memory_mb"] / 1024 * gb_s[worker["architecture"]]
        )
        / batch
        * attempts,
        # key read + record PutItem (base + gsi1); worker per attempt: record read + 2 saves (see --design).
        "DynamoDB": p["ddb_read_unit"] * (key_reads + attempts * math.ceil(record_kb / 4))
        + p["ddb_write_unit"] * (2 * ddb_record_wcu + 2 * attempts * save_wcu),
        # request.json PUT and the MIME PUT; the reads per --design.
        "S3 requests": p["s3_put"] * 2 + p["s3_get"] * s3_gets,
        "S3 storage (retention)": p["s3_storage_gb_month"] * (2 * kb / 1024 / 1024) * facts["body_retention_days"] / 30,
        "DynamoDB storage (1 month)": p["ddb_storage_gb_month"] * record_kb / 1024 / 1024,
        # SendMessage, plus the event source's ReceiveMessage and DeleteMessageBatch per batch (empty polls ignored).
        "SQS requests": p["sqs_request"] * (1 + attempts * 2 / batch + (attempts - 1)),
        "CloudWatch Logs": p["logs_ingest_gb"] * (args.log_bytes_send + args.log_bytes_worker / batch) / 1024**3,
        "X-Ray traces": p["xray_trace_recorded"] * args.trace_sampling * (1 + 1 / batch)
        if facts["tracing"] == "Active"
        else 0.0,
    }
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--send-ms", type=float, default=None, help="billed ms of one send API invocation (warm)")
    parser.add_argument("--worker-batch-ms", type=float, default=None, help="billed ms of one worker batch")
    parser.add_argument("--message-kb", type=float, default=10.0)
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--attempts", type=float, default=1.05, help="delivery attempts per mail (retries)")
    parser.add_argument("--log-bytes-send", type=float, default=600, help="log bytes per send invocation")
    parser.add_argument("--log-bytes-worker", type=float, default=2500, help="log bytes per worker batch")
    parser.add_argument("--trace-sampling", type=float, default=0.05, help="share of requests X-Ray records")
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--design", choices=["before", "after"], default="after", help="issue 21's batching or not")
    args = parser.parse_args()
    measured = RESULTS / "handler_durations.json"
    if (args.send_ms is None or args.worker_batch_ms is None) and measured.exists():
        durations = json.loads(measured.read_text())
        args.send_ms = args.send_ms or durations["send_ms"]
        args.worker_batch_ms = args.worker_batch_ms or durations["worker_batch_ms"]
    if args.send_ms is None or args.worker_batch_ms is None:
        parser.error("give --send-ms and --worker-batch-ms (or run bench/handler_durations.py first)")
    facts = template_facts(args.template)
    cost = per_mail(facts, args)
    total = sum(cost.values())
    print(f"cost model, prices {PRICES_AS_OF}")
    print(
        f"template: send API {facts['send_api']['memory_mb']} MB {facts['send_api']['architecture']}, worker "
        f"{facts['worker']['memory_mb']} MB {facts['worker']['architecture']}, batch {facts['batch_size']}, bodies "
        f"kept {facts['body_retention_days']} days, tracing {facts['tracing']}"
    )
    print(
        f"inputs: send API {args.send_ms:.0f} ms, worker batch {args.worker_batch_ms:.0f} ms, {args.message_kb:g} KB, "
        f"{args.recipients} recipient(s), {args.attempts:g} attempts per mail, design {args.design}"
    )
    for name, value in sorted(cost.items(), key=lambda item: -item[1]):
        print(f"  {name:34s} ${value * 1e6:8.2f} per million mails")
    print(f"  {'total beyond SES':34s} ${total * 1e6:8.2f} per million mails (SES itself: $100 per million)")


if __name__ == "__main__":
    main()
