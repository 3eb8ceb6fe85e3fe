"""POST → SMTP sink latency through the local stack (issue #3's figure).

Starts the same harness as `postroom local` with a loopback DNS server and an aiosmtpd sink standing in for the
recipient's MX, then sends messages one at a time and times each from the start of the POST until the sink has the
message. The worker's SQS long poll is part of the path, as it is on Lambda.

    .venv/bin/python bench/local_latency.py [--count 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

from postroom.local.stack import LocalStack, StackConfig
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    zone = {"example.org": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}}
    with RecordingSink() as sink, LoopbackDnsServer(zone=zone) as dns:
        config = StackConfig(
            api_port=0,
            sandbox=False,
            parameters={
                "SendingDomains": "shop.example",
                "DefaultDelivery": "smtp",
                "DnsNameservers": f"127.0.0.1:{dns.port}",
                "SmtpPort": str(sink.port),
            },
        )
        with LocalStack(config) as stack:
            body = json.dumps(
                {"from": "shop@shop.example", "to": "ann@example.org", "subject": "latency", "text": "x" * 2000}
            ).encode()
            samples = []
            for i in range(args.count + 3):
                request = urllib.request.Request(
                    stack.api_url + "/v1/messages",
                    data=body,
                    headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
                )
                start = time.perf_counter()
                with urllib.request.urlopen(request) as response:
                    assert response.status == 202
                sink.wait_for(i + 1, timeout=30)
                if i >= 3:  # the first messages warm up imports and connections
                    samples.append(time.perf_counter() - start)
    samples.sort()
    print(
        f"POST → sink, {len(samples)} messages: median {statistics.median(samples) * 1000:.0f} ms, "
        f"p95 {samples[int(len(samples) * 0.95) - 1] * 1000:.0f} ms, min {samples[0] * 1000:.0f} ms, "
        f"max {samples[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
