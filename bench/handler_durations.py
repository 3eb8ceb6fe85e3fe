"""Handler durations for the cost model: the real send API and worker handlers, in process, against moto.

Times one warm ``POST /v1/messages`` invocation and one warm worker invocation on a batch of 10 queued messages
(delivery through SES, which moto answers), medians over ``--runs``. moto answers in-process within a few ms, roughly
like AWS within a region, so these are stand-ins for the billed durations until figures from a deployed stack
(the REPORT lines' "Billed Duration") replace them. Writes bench/results/handler_durations.json, which
bench/cost_model.py reads.

    .venv/bin/python bench/handler_durations.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

from _common import ROOT, machine, save

sys.path.insert(0, str(ROOT))  # for tests.conftest: the same emulated stack the suite uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING",
    )  # fmt: skip
    import boto3
    import pytest
    from moto import mock_aws
    from tests.conftest import start_stack

    from postroom.local.poller import build_sqs_event

    message = {"from": "Shop <orders@shop.example>", "to": ["ann@example.org"], "subject": "Order", "text": "x" * 8000}
    send_ms: list[float] = []
    batch_ms: list[float] = []
    with mock_aws(), pytest.MonkeyPatch.context() as monkeypatch:
        stack = start_stack(monkeypatch)
        sqs = boto3.client("sqs")
        url, arn = stack.resources["DeliveryQueue"]["Ref"], stack.resources["DeliveryQueue"]["Arn"]
        for run in range(args.runs + 1):
            for _ in range(10):
                start = time.perf_counter()
                status, _body = stack.request("POST", "/v1/messages", message)
                send_ms.append((time.perf_counter() - start) * 1000)
                assert status == 202
            messages = []
            while len(messages) < 10:
                messages += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            start = time.perf_counter()
            result = stack.worker.invoke(build_sqs_event(messages, arn, "us-east-1"))
            elapsed = (time.perf_counter() - start) * 1000
            assert not result["batchItemFailures"], result
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            if run:  # the first round warms imports and clients
                batch_ms.append(elapsed)
    figures = {"send_ms": statistics.median(send_ms[10:]), "worker_batch_ms": statistics.median(batch_ms)}
    print(f"handler durations against moto, {machine()}")
    print(
        f"send API: {figures['send_ms']:.1f} ms per request; "
        f"worker: {figures['worker_batch_ms']:.1f} ms per batch of 10"
    )
    path = save("handler_durations", figures)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
