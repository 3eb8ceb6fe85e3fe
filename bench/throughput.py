"""Delivery throughput: Postroom's SMTP delivery code against Postfix's ``smtp-source``, both into Postfix's
``smtp-sink`` on loopback, at the same concurrency, in one run (target: Postroom ≥ 0.8× smtp-source).

What is measured, per run, is the wall time to deliver ``--messages`` messages of about 10 KB:

* **Postroom**: ``--concurrency`` worker processes (on Lambda each concurrent worker is its own execution
  environment, i.e. its own process). Each takes its share of the messages in batches of ``--batch`` (the SQS event
  source's BatchSize, 10 in template.yaml) and, exactly as ``postroom.wiring.worker_batch.handle_batch`` does, opens one
  ``SmtpDeliveryAgent`` per batch (``with ...:``), calls ``deliver(domain, sender, [recipient], mime)`` for each
  message and closes it: MX lookup through the worker's ``MxResolver`` (a loopback DNS server, answers cached per
  their TTL), connection set-up with EHLO, one session reused for the whole batch (RSET between messages), MAIL /
  RCPT / DATA with dot-stuffing, a per-recipient result checked to be ``delivered``. The MIME is prebuilt by
  ``postroom.accept.mime_build`` (text/plain, 7bit); DynamoDB, S3 and SQS are not part of this figure.
* **Reference**: ``smtp-source -d -s N -m M -l L`` (``-d``: one connection per session for all its messages, so it
  reuses connections at least as much as Postroom does), same sink, same concurrency, payload length chosen so that
  both send the same number of bytes per message.

Runs alternate (Postroom, smtp-source, smtp-source, Postroom, …); the figure is the median of each side and the
median of the per-pair ratios.

Needs Debian's postfix package for the two tools (see bench/README.md):

    .venv/bin/python bench/throughput.py [--messages 2000] [--concurrency 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime

from _common import Paired, machine, print_paired, save

from postroom.accept.mime_build import build_message, message_id_header, render
from postroom.accept.models import SendRequest
from postroom.core.delivery_results import Outcome
from postroom.deliver.mx import MxResolver
from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions
from postroom.testing.dns_server import LoopbackDnsServer

SENDER = "orders@shop.example"
DOMAIN = "example.org"
ZONE = {DOMAIN: {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}}
DNS_TTL = 300  # real MX records are cached for minutes; the worker's resolver honours the TTL


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_sink(port: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"]
    sink = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError as error:
                if sink.poll() is not None or time.monotonic() > deadline:
                    output = sink.stderr.read().decode() if sink.stderr else ""
                    raise RuntimeError(f"smtp-sink did not start: {output}") from error
                time.sleep(0.02)
        yield sink
    finally:
        sink.terminate()
        sink.wait(5)


def build_mime(size: int) -> bytes:
    line = "Your order has shipped; the parcel is on its way. Track it with the link in your account.\n"
    text = (line * (size // len(line) + 1))[:size]
    request = SendRequest.model_validate(
        {"from": f"Shop <{SENDER}>", "to": [f"ann@{DOMAIN}"], "subject": "Your order has shipped", "text": text}
    )
    msg = build_message(
        request, message_id=message_id_header("msg_01bench", "shop.example"), date=datetime(2026, 1, 1, tzinfo=UTC)
    )
    return render(msg)


def _worker(count: int, batch: int, mime: bytes, dns_port: int, smtp_port: int, start: mp.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    resolver = MxResolver([("127.0.0.1", dns_port)])  # one per execution environment, as in delivery.batch
    options = SmtpOptions(helo_name="relay.postroom.test", port=smtp_port, timeout=30)
    resolver.resolve(DOMAIN)  # warm, as a warm Lambda would be
    start.wait()
    delivered = 0
    sent = 0
    while sent < count:
        size = min(batch, count - sent)
        with SmtpDeliveryAgent(resolver, options) as agent:
            for i in range(size):
                results = agent.deliver(DOMAIN, SENDER, [f"user{sent + i}@{DOMAIN}"], mime)
                delivered += sum(r.outcome is Outcome.DELIVERED for r in results)
        sent += size
    out.put(delivered)


def run_postroom(args: argparse.Namespace, mime: bytes, dns_port: int, smtp_port: int) -> float:
    ctx = mp.get_context("fork")
    start = ctx.Event()
    out = ctx.Queue()
    shares = [
        args.messages // args.concurrency + (i < args.messages % args.concurrency) for i in range(args.concurrency)
    ]
    procs = [
        ctx.Process(target=_worker, args=(share, args.batch, mime, dns_port, smtp_port, start, out)) for share in shares
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.3)  # let every worker reach the start line
    began = time.perf_counter()
    start.set()
    delivered = sum(out.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - began
    for proc in procs:
        proc.join(10)
    if delivered != args.messages:
        raise RuntimeError(f"Postroom delivered {delivered} of {args.messages}")
    return elapsed


def run_smtp_source(args: argparse.Namespace, payload: int, smtp_port: int) -> float:
    command = [
        shutil.which("smtp-source") or "/usr/sbin/smtp-source",
        "-d",
        "-s", str(args.concurrency),
        "-m", str(args.messages),
        "-l", str(payload),
        "-f", SENDER,
        "-t", f"ann@{DOMAIN}",
        "-M", "relay.postroom.test",
        f"127.0.0.1:{smtp_port}",
    ]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=10, help="messages per SMTP agent (the SQS BatchSize)")
    parser.add_argument("--size", type=int, default=10 * 1024, help="approximate message size in bytes")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not (shutil.which("smtp-source") or shutil.which("/usr/sbin/smtp-source")):
        sys.exit("smtp-source/smtp-sink not found: install Debian's postfix package (see bench/README.md)")

    mime = build_mime(args.size - 400)
    # smtp-source adds about 200 bytes of headers (From, To, Date, Message-Id, Subject) to its payload.
    payload = max(1, len(mime) - 200)
    print(f"throughput, {machine()}")
    print(
        f"{args.messages} messages of {len(mime)} bytes, concurrency {args.concurrency}, Postroom batches of "
        f"{args.batch}; smtp-source -d payload {payload} bytes"
    )
    port = free_port()
    seconds = Paired("delivery time", "s")
    rates = Paired(f"throughput (msgs/s), concurrency {args.concurrency}", "msgs/s")
    with LoopbackDnsServer(zone=ZONE, ttl=DNS_TTL) as dns, smtp_sink(port):
        run_postroom(args, mime, dns.port, port)  # warm-up, not counted
        run_smtp_source(args, payload, port)
        for i in range(args.runs):
            if i % 2 == 0:
                a = run_postroom(args, mime, dns.port, port)
                b = run_smtp_source(args, payload, port)
            else:
                b = run_smtp_source(args, payload, port)
                a = run_postroom(args, mime, dns.port, port)
            seconds.add(a, b)
            rates.add(args.messages / a, args.messages / b)
            print(f"  run {i + 1}: Postroom {args.messages / a:.0f} msgs/s, smtp-source {args.messages / b:.0f} msgs/s")
    print_paired(rates, higher_is_better=True, target=0.8)
    print(f"saved {save('throughput', {'rates': rates.summary(), 'seconds': seconds.summary(), 'args': vars(args)})}")


if __name__ == "__main__":
    main()
