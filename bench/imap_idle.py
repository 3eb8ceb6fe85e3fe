"""How soon an IMAP client idling through ``postroom bridge`` hears of new mail (issue 20), beside a reference measured
in the same run.

    .venv/bin/python bench/imap_idle.py              # 12 pairs
    .venv/bin/python bench/imap_idle.py --runs 4     # a quick look

One local stack and one bridge (default settings, so IDLE checks the mailbox's state every
``postroom.protocols.bridge.imap.IDLE_CHECK_SECONDS``). In pairs whose order alternates:

* **IDLE**: an imaplib client has selected the Inbox and sent IDLE; a message goes in through the stack's inbound SMTP
  listener (the local stand-in for SES receiving, which files it before it answers the DATA). The figure is the time
  from that answer to the client reading ``* n EXISTS``.
* **reference, NOOP**: the same delivery, then the client sends NOOP at once and waits for ``* n EXISTS``: what a
  client learns without waiting at all (one mailbox read and one listing through the bridge). IDLE minus this is the
  wait for the next check.

The ratio is the median of per-pair ratios; the absolute IDLE latency is what the issue's target (≤ 2 s) is about.
Results go to ``bench/results/imap_idle.json``.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import smtplib
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Paired, interleave, print_paired, save

ADDRESS = "support@shop.example"
TARGET_SECONDS = 2.0


def deliver(host: str, port: int, subject: str) -> None:
    message = EmailMessage()
    message["From"] = "ann@example.org"
    message["To"] = ADDRESS
    message["Subject"] = subject
    message.set_content("Hello.\n")
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.send_message(message, from_addr="ann@example.org", to_addrs=[ADDRESS])


def wait_for_exists(client: imaplib.IMAP4, count: int) -> None:
    while True:
        line = client.readline()
        if not line:
            raise RuntimeError("the bridge closed the connection")
        if line.strip() == b"* %d EXISTS" % count:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    os.environ["POSTROOM_INBOUND_SMTP_PORT"] = "0"
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    from postroom.local.stack import LocalStack, StackConfig
    from postroom.protocols.bridge.imap import IDLE_CHECK_SECONDS
    from postroom.protocols.bridge.runner import Bridge, BridgeConfig

    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig(
            api_port=0,
            outbox=Path(tmp) / "outbox",
            parameters={"SendingDomains": "shop.example", "InboundDomains": "shop.example"},
        )
        stack = LocalStack(config).start()
        ports = {"imap": 0}
        bridge = Bridge(
            BridgeConfig(
                api_url=stack.api_url,
                smtp_port=None,
                smtps_port=None,
                imap_port=ports["imap"],
                pop3_port=None,
                imaps_port=None,
                pop3s_port=None,
                state_dir=Path(tmp) / "bridge",
            )
        ).start()
        try:
            import json
            import urllib.request

            request = urllib.request.Request(
                stack.api_url + "/v1/addresses",
                data=json.dumps({"address": ADDRESS}).encode(),
                method="POST",
                headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=30).read()
            client = imaplib.IMAP4("127.0.0.1", bridge.ports()["imap"], timeout=60)
            client.login(ADDRESS, stack.api_key)
            count = int(client.select("INBOX")[1][0])
            inbound = (stack.inbound.host, stack.inbound.port)

            def idle() -> float:
                nonlocal count
                tag = client._new_tag()  # the IDLE command by hand: imaplib (3.11) has no IDLE
                client.send(tag + b" IDLE\r\n")
                assert client.readline().startswith(b"+")
                deliver(*inbound, "idle")
                delivered = time.perf_counter()
                count += 1
                wait_for_exists(client, count)
                seen = time.perf_counter() - delivered
                client.send(b"DONE\r\n")
                while not client.readline().startswith(tag):
                    pass
                return seen

            def noop() -> float:
                nonlocal count
                deliver(*inbound, "noop")
                delivered = time.perf_counter()
                count += 1
                tag = client._new_tag()
                client.send(tag + b" NOOP\r\n")
                wait_for_exists(client, count)
                seen = time.perf_counter() - delivered
                while not client.readline().startswith(tag):
                    pass
                return seen

            paired = Paired("IDLE: delivery → * EXISTS", "s")
            for a, b in interleave(args.runs, idle, noop):
                paired.add(a, b)
            client.logout()
        finally:
            bridge.stop()
            stack.stop()
    print_paired(paired)
    worst = max(paired.a)
    median = statistics.median(paired.a)
    verdict = "met" if median <= TARGET_SECONDS else "MISSED"
    print(
        f"IDLE latency: median {median:.2f} s, max {worst:.2f} s (check every {IDLE_CHECK_SECONDS} s); target ≤ "
        f"{TARGET_SECONDS} s: {verdict}"
    )
    path = save("imap_idle", {"idle": paired.summary(), "idle_max": worst, "check_seconds": IDLE_CHECK_SECONDS})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
