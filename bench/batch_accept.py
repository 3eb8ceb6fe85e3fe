"""Accept time per message for POST /v1/messages/batch with 500 messages, against the local stack.

Starts the same local stack `postroom local` runs (moto server on loopback, the real send API handler behind the
HTTP gateway; the worker's poller is stopped first so delivery does not compete for the CPU), then times a few
batches of 500 over HTTP and prints per-batch and per-message figures.

    .venv/bin/python bench/batch_accept.py [--batches 3] [--size 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from postroom.local.stack import LocalStack, StackConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()

    config = StackConfig(api_port=0, outbox=Path(tempfile.mkdtemp()) / "outbox")
    stack = LocalStack(config).start()
    try:
        for poller in stack.pollers:  # measure accepting, not delivering
            poller.stop()
        timings = []
        for run in range(args.batches):
            rows = [
                {
                    "from": "Shop <orders@example.com>",
                    "to": [f"customer{run}-{i}@example.org"],
                    "subject": f"Order {i} confirmed",
                    "html": f"<p>Thank you for order <b>{i}</b>.</p>",
                }
                for i in range(args.size)
            ]
            request = urllib.request.Request(
                f"{stack.api_url}/v1/messages/batch",
                method="POST",
                data=json.dumps({"messages": rows}).encode(),
                headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=300) as response:
                body = json.loads(response.read())
            elapsed = time.perf_counter() - started
            assert body["accepted"] == args.size, body["rejected"]
            timings.append(elapsed)
            print(
                f"batch {run + 1}: {args.size} accepted in {elapsed:.2f} s "
                f"= {elapsed / args.size * 1000:.2f} ms/message"
            )
        best, median = min(timings), statistics.median(timings)
        print(
            f"batch of {args.size}: median {median:.2f} s ({median / args.size * 1000:.2f} ms per message), "
            f"best {best:.2f} s ({best / args.size * 1000:.2f} ms per message)"
        )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
