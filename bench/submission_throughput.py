"""SMTP submission throughput (issue #11's figure): messages per second accepted over SMTP submission, beside the raw
HTTP endpoint that every submitted message goes through, measured on one local stack in the same run.

One local stack (as ``postroom local`` starts it: moto on loopback, the real send API handler behind the HTTP gateway;
the worker's pollers are stopped so that delivery does not compete for the CPU: only *acceptance* is measured), an
SMTP submission listener built exactly as the stack's own
(``postroom.protocols.submission.smtp_listener.submission_server`` with
STARTTLS, pointed at the stack's API; its per-key rate limit is raised so that it does not throttle the benchmark),
and, per run, the same ``--messages`` messages (identical MIME bytes, CRLF) sent three ways:

* **SMTP**: ``--concurrency`` smtplib connections, each ``EHLO``, ``STARTTLS``, ``EHLO``, ``AUTH`` (an API key as the
  password) once, then ``MAIL``/``RCPT``/``DATA`` for its share of the messages on that one connection. A message
  counts when ``DATA`` is answered ``250 2.0.0 queued as msg_…``. The listener turns each message into one
  ``POST /v1/messages/raw``, so this path *contains* the next one.
* **HTTP** (the reference): ``--concurrency`` keep-alive ``http.client`` connections, each POSTing its share of the
  same bytes to ``/v1/messages/raw?mail_from=…&rcpt=…`` (``Content-Type: message/rfc822``). A message counts when
  it is answered ``202``. The ratio SMTP/HTTP is therefore the listener's overhead: 1.0 would be a free listener.
* **Postfix** (a ceiling, not like-for-like): ``smtp-source -d -s C -m N`` into ``smtp-sink`` on loopback, with a
  payload of the same size: plain SMTP transactions in C, no TLS, no AUTH, nothing validated or queued. It says what
  SMTP itself costs on this machine, so that the Postroom figures can be read against the machine's speed.

The clients run in a separate process (spawned once, before the stack starts), so that their CPU work does not
compete for the stack's interpreter lock; connection set-up (TLS handshake, AUTH) is inside the timed interval.
Runs cycle through the orders of the paths so that none always runs on a warmer or quieter machine. At the end every
message must have been accepted (the 250s and 202s are counted, and the delivery queue must have received one pointer
per accepted message); anything else fails the run.

``--api stub`` puts a stub in place of the stack (its own process; it answers ``/v1/me`` and ``202`` to every raw
POST at once, over kept-alive connections), so that SMTP/HTTP becomes the listener's own ceiling: what the listener
(aiosmtpd, TLS, the HTTP call it makes per message) costs when the API behind it costs nothing.

    .venv/bin/python bench/submission_throughput.py [--messages 300] [--concurrency 4] [--runs 6] [--size 2000]
    .venv/bin/python bench/submission_throughput.py --api stub --messages 2000 --no-postfix
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import multiprocessing as mp
import os
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

from _common import Paired, machine, print_paired, save
from throughput import free_port, smtp_sink

SENDER = "orders@example.com"  # the local stack's default sending domain
RECIPIENT = "ann@example.org"
EHLO_NAME = "crm.bench.example"
WARMUP_MESSAGES = 20


def build_mime(size: int) -> bytes:
    """A plain transactional message of about ``size`` bytes, CRLF line endings (what smtplib puts on the wire)."""
    line = "Your order has shipped; the parcel is on its way. Track it with the link in your account.\n"
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"Shop <{SENDER}>"
    msg["To"] = RECIPIENT
    msg["Subject"] = "Your order has shipped"
    msg["Message-ID"] = "<bench-submission@example.com>"
    msg["Date"] = "Thu, 01 Jan 2026 00:00:00 +0000"
    msg.set_content((line * (size // len(line) + 1))[:size])
    return msg.as_bytes()


# --- client side (runs in its own process) ---------------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float
    accepted: int = 0
    failures: list[str] = field(default_factory=list)


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def _smtp_connection(job: dict[str, Any], count: int, start: threading.Barrier, out: list[Any]) -> None:
    context = ssl.create_default_context(cafile=job["cafile"])
    accepted, failures = 0, []
    start.wait()
    try:
        with smtplib.SMTP("127.0.0.1", job["smtp_port"], timeout=60) as client:
            client.ehlo(EHLO_NAME)
            client.starttls(context=context)
            client.ehlo(EHLO_NAME)
            client.login("apikey", job["key"])
            for _ in range(count):
                code, reply = client.mail(SENDER)
                if code != 250:
                    failures.append(f"MAIL {code} {reply!r}")
                    client.rset()
                    continue
                code, reply = client.rcpt(RECIPIENT)
                if code != 250:
                    failures.append(f"RCPT {code} {reply!r}")
                    client.rset()
                    continue
                try:
                    code, reply = client.data(job["mime"])
                except smtplib.SMTPDataError as error:
                    code, reply = error.smtp_code, error.smtp_error
                if code == 250 and reply.startswith(b"2.0.0 queued as msg_"):
                    accepted += 1
                else:
                    failures.append(f"DATA {code} {reply!r}")
    except (OSError, smtplib.SMTPException) as error:
        failures.append(f"connection: {error!r}")
    out.append((accepted, failures))


def _http_connection(job: dict[str, Any], count: int, start: threading.Barrier, out: list[Any]) -> None:
    query = urllib.parse.urlencode([("mail_from", SENDER), ("rcpt", RECIPIENT)])
    headers = {"Authorization": f"Bearer {job['key']}", "Content-Type": "message/rfc822"}
    accepted, failures = 0, []
    start.wait()
    connection = http.client.HTTPConnection("127.0.0.1", job["http_port"], timeout=60)
    try:
        for _ in range(count):
            connection.request("POST", f"/v1/messages/raw?{query}", body=job["mime"], headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status == 202:
                accepted += 1
            else:
                failures.append(f"HTTP {response.status} {body[:200]!r}")
    except (OSError, http.client.HTTPException) as error:
        failures.append(f"connection: {error!r}")
    finally:
        connection.close()
    out.append((accepted, failures))


def run_clients(job: dict[str, Any]) -> Outcome:
    """``job["concurrency"]`` connections of one kind in threads; the time from the start line until the last is
    done."""
    target = _smtp_connection if job["kind"] == "smtp" else _http_connection
    start = threading.Barrier(job["concurrency"] + 1)
    out: list[Any] = []
    threads = [
        threading.Thread(target=target, args=(job, share, start, out))
        for share in _shares(job["messages"], job["concurrency"])
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    outcome = Outcome(time.perf_counter() - began)
    for accepted, failures in out:
        outcome.accepted += accepted
        outcome.failures += failures
    return outcome


def client_process(conn: Any) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(run_clients(job))


# --- the Postfix ceiling ---------------------------------------------------------------------------------------------


def run_smtp_source(messages: int, concurrency: int, payload: int, port: int) -> Outcome:
    command = [
        shutil.which("smtp-source") or "/usr/sbin/smtp-source",
        "-d",
        "-s", str(concurrency),
        "-m", str(messages),
        "-l", str(payload),
        "-f", SENDER,
        "-t", RECIPIENT,
        "-M", EHLO_NAME,
        f"127.0.0.1:{port}",
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600, check=False)
    outcome = Outcome(time.perf_counter() - began)
    # smtp-source gives up (non-zero exit, a message on stderr) on any reply it did not expect.
    if done.returncode == 0 and not done.stderr.strip():
        outcome.accepted = messages
    else:
        outcome.failures.append(f"smtp-source exit {done.returncode}: {done.stderr.decode(errors='replace')[:300]}")
    return outcome


# --- the stub API (--api stub) -------------------------------------------------------------------------------------


def serve_stub() -> None:
    """Answer as the API would, at once: ``GET /v1/me`` with the send scope, ``202`` to every raw POST (counted;
    ``GET /stub/count`` reads and resets the count). Prints its port, then serves until killed."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    accepted = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = -1  # one write per response, as postroom.local.gateway does
        disable_nagle_algorithm = True

        def log_message(self, *_: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/stub/count":
                with lock:
                    count, accepted[0] = accepted[0], 0
                self._answer(200, {"count": count})
            else:
                self._answer(200, {"scopes": ["messages:send"]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                accepted[0] += 1
                number = accepted[0]
            self._answer(202, {"id": f"msg_stub{number}", "status": "queued"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the run -------------------------------------------------------------------------------------------------------


class Bench:
    """The client process, one local stack with its pollers stopped, a submission listener on it and (optionally)
    an ``smtp-sink``; each path is a method that sends ``messages`` and returns the outcome."""

    def __init__(self, *, concurrency: int, size: int, postfix: bool = True, api: str = "stack") -> None:
        self.api = api
        self.concurrency = concurrency
        self.mime = build_mime(size)
        self.payload = max(1, len(self.mime) - 200)  # smtp-source adds about 200 bytes of headers to its payload
        self.postfix = postfix
        self._closers: list[Any] = []

    def __enter__(self) -> Bench:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        # The client process first, before the stack's threads exist.
        spawn = mp.get_context("spawn")
        self._pipe, child = spawn.Pipe()
        clients = spawn.Process(target=client_process, args=(child,), daemon=True)
        clients.start()
        self._closers.append(lambda: (self._pipe.send(None), clients.join(10)))

        from postroom.protocols.submission.api_client import PostroomClient
        from postroom.protocols.submission.smtp_listener import SubmissionOptions, submission_server
        from postroom.protocols.tlscert import server_context, write_self_signed

        workdir = Path(tempfile.mkdtemp(prefix="postroom-subbench-"))
        if self.api == "stub":
            stub = subprocess.Popen([sys.executable, __file__, "--serve-stub"], stdout=subprocess.PIPE)
            self._closers.append(lambda: (stub.terminate(), stub.wait(5)))
            self.api_url, self.key = f"http://127.0.0.1:{int(stub.stdout.readline())}", "pr_bench_stub"
        else:
            from postroom.local.stack import LocalStack, StackConfig

            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            os.environ["MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"] = "false"  # take_pointers purges each batch
            self.stack = LocalStack(StackConfig(api_port=0, outbox=workdir / "outbox")).start()
            self._closers.append(self.stack.stop)
            for poller in self.stack.pollers:  # measure accepting, not delivering
                poller.stop()
            for poller in self.stack.pollers:  # a poll under way may still hand out one batch
                poller.join(timeout=10)
            self.api_url, self.key = self.stack.api_url, self.stack.api_key
        certificate, key = write_self_signed(workdir / "tls")
        # Built as LocalStack._start_submission builds it, but with the per-key rate limit out of the way.
        self.listener = submission_server(
            PostroomClient(self.api_url),
            host="127.0.0.1",
            port=0,
            tls_context=server_context(certificate, key),
            options=SubmissionOptions(rate_per_minute=10**9),
        )
        self.listener.start()
        self._closers.append(self.listener.stop)
        self._job = {
            "key": self.key,
            "mime": self.mime,
            "cafile": str(certificate),
            "smtp_port": self.listener.port,
            "http_port": int(self.api_url.rsplit(":", 1)[1]),
            "concurrency": self.concurrency,
        }
        if self.postfix:
            self.sink_port = free_port()
            sink = smtp_sink(self.sink_port)
            sink.__enter__()
            self._closers.append(lambda: sink.__exit__(None, None, None))

    def __exit__(self, *_: object) -> None:
        while self._closers:
            self._closers.pop()()

    def smtp(self, messages: int) -> Outcome:
        self._pipe.send({**self._job, "kind": "smtp", "messages": messages})
        return self._pipe.recv()

    def http(self, messages: int) -> Outcome:
        self._pipe.send({**self._job, "kind": "http", "messages": messages})
        return self._pipe.recv()

    def smtp_source(self, messages: int) -> Outcome:
        return run_smtp_source(messages, self.concurrency, self.payload, self.sink_port)

    def take_pointers(self) -> int:
        """How many messages reached the queue since the last call: pointers in the delivery queue (one per accepted
        message; nothing takes them off), which are then purged; with the stub, the POSTs it answered.

        Purged after every batch because moto's SendMessage answers with the queue's attributes, which it counts by
        walking every message: with the queue left to grow, each send gets slower (34 → 13 msgs/s over 3 000
        messages on one path alone), a drift of the emulator and not of anything measured here."""
        if self.api == "stub":
            with urllib.request.urlopen(f"{self.api_url}/stub/count", timeout=10) as response:
                return int(json.loads(response.read())["count"])
        from postroom.core import aws

        sqs = aws.client("sqs")
        url = self.stack.resources["DeliveryQueue"]["Ref"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        sqs.purge_queue(QueueUrl=url)
        return sum(int(value) for value in attributes.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300, help="messages per path per run")
    parser.add_argument("--concurrency", type=int, default=4, help="connections per path")
    parser.add_argument("--runs", type=int, default=6, help="counted runs (each sends every path once)")
    parser.add_argument("--size", type=int, default=2000, help="approximate text size of each message in bytes")
    parser.add_argument("--no-postfix", action="store_true", help="skip the smtp-source → smtp-sink ceiling")
    parser.add_argument(
        "--api", choices=("stack", "stub"), default="stack", help="stub: an API that costs nothing (listener ceiling)"
    )
    parser.add_argument("--serve-stub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        serve_stub()
        return
    postfix = not args.no_postfix
    if postfix and not (shutil.which("smtp-source") or Path("/usr/sbin/smtp-source").exists()):
        sys.exit("smtp-source/smtp-sink not found: install Debian's postfix package (see bench/README.md)")

    # The handlers log to stdout and Powertools prints its metrics there every 100 values even when metrics are
    # disabled: all of that goes to stderr, so that stdout holds only this report.
    report, sys.stdout = sys.stdout, sys.stderr
    try:
        summary = run(args, postfix, report)
    finally:
        sys.stdout = report
    print(json.dumps(summary, indent=2))
    name = "submission_throughput" + ("_stub" if args.api == "stub" else "")
    print(f"saved {save(name, summary)}")


def run(args: argparse.Namespace, postfix: bool, report: Any) -> dict[str, Any]:
    def say(text: str) -> None:
        print(text, file=report, flush=True)

    with Bench(concurrency=args.concurrency, size=args.size, postfix=postfix, api=args.api) as bench:
        say(f"submission throughput, {machine()}")
        api = "a stub that answers at once" if args.api == "stub" else "the local stack"
        say(
            f"API: {api}; {args.messages} messages of {len(bench.mime)} bytes per path per run, "
            f"concurrency {args.concurrency}, {args.runs} runs"
            + (f"; smtp-source -d payload {bench.payload} bytes" if postfix else "")
        )
        paths = {"smtp": bench.smtp, "http": bench.http} | ({"postfix": bench.smtp_source} if postfix else {})
        totals: dict[str, dict[str, Any]] = {
            name: {"sent": 0, "accepted": 0, "queued": 0, "failures": []} for name in paths
        }

        def send(name: str, messages: int) -> Outcome:
            outcome = paths[name](messages)
            totals[name]["sent"] += messages
            totals[name]["accepted"] += outcome.accepted
            totals[name]["failures"] += outcome.failures
            totals[name]["queued"] += bench.take_pointers() if name != "postfix" else outcome.accepted
            return outcome

        for name in paths:  # warm-up, not timed: imports, the key cache, TLS, moto's first writes
            send(name, WARMUP_MESSAGES)
        rates: dict[str, list[float]] = {name: [] for name in paths}
        orders = itertools.cycle(itertools.permutations(paths))  # every order in turn: none always goes first
        for i in range(args.runs):
            order = next(orders)
            for name in order:
                rates[name].append(args.messages / send(name, args.messages).seconds)
            figures = ", ".join(f"{name} {rates[name][-1]:.1f}" for name in order)
            say(f"  run {i + 1} ({' → '.join(order)}): {figures} msgs/s")

        # Every message accepted, and one queue pointer for each (the pollers are stopped, so none was taken).
        problems = [
            f"{name}: {t['accepted']} of {t['sent']} accepted; first failures: {t['failures'][:3]}"
            for name, t in totals.items()
            if t["accepted"] != t["sent"] or t["failures"]
        ]
        problems += [
            f"{name}: {t['queued']} pointers queued for {t['accepted']} accepted messages"
            for name, t in totals.items()
            if t["queued"] != t["accepted"]
        ]
        if len(bench.listener.handler.queued) != totals["smtp"]["accepted"]:
            problems.append(
                f"the listener queued {len(bench.listener.handler.queued)} messages, the clients saw "
                f"{totals['smtp']['accepted']} answered 250"
            )
        if problems:
            for problem in problems:
                print("FAILED:", problem, file=sys.stderr)
            sys.exit(1)
        message_bytes = len(bench.mime)

    smtp_vs_http = Paired("SMTP submission / raw HTTP", "msgs/s", rates["smtp"], rates["http"])
    summary: dict[str, Any] = {
        "api": args.api,
        "messages_per_run": args.messages,
        "message_bytes": message_bytes,
        "concurrency": args.concurrency,
        "runs": args.runs,
        "accepted": {name: f"{t['accepted']}/{t['sent']}" for name, t in totals.items()},
        "queued": {name: t["queued"] for name, t in totals.items() if name != "postfix"},
        "smtp_msgs_per_s": _spread(rates["smtp"]),
        "http_msgs_per_s": _spread(rates["http"]),
        "smtp_over_http": _ratio(smtp_vs_http),
    }
    if postfix:
        summary["postfix_msgs_per_s"] = _spread(rates["postfix"])
        summary["smtp_over_postfix"] = _ratio(Paired("", "", rates["smtp"], rates["postfix"]))
        summary["http_over_postfix"] = _ratio(Paired("", "", rates["http"], rates["postfix"]))
    summary["machine"] = machine()
    with contextlib.redirect_stdout(report):
        print_paired(smtp_vs_http, higher_is_better=True)
    return summary


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "runs": [round(v, 2) for v in values],
    }


def _ratio(p: Paired) -> dict[str, float]:
    """The median of the per-run ratios (each run's two figures were taken minutes apart at most), min and max."""
    return {
        "median": round(statistics.median(p.ratios), 5),
        "min": round(min(p.ratios), 5),
        "max": round(max(p.ratios), 5),
    }


if __name__ == "__main__":
    main()
