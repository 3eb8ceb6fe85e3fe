"""Time to FETCH 1 000 message headers through ``postroom bridge`` (IMAP over the mailbox HTTP API), beside references
measured in the same run (issue 11).

    .venv/bin/python bench/imap_fetch.py                          # 1000 messages, 5 rounds
    .venv/bin/python bench/imap_fetch.py --messages 200 --rounds 2  # a quick look
    .venv/bin/python bench/imap_fetch.py --fill smtp              # fill through the inbound SMTP listener instead

One local stack (``LocalStack``: moto server, API gateway, the real handlers, all in this process). An address's Inbox
gets ``--messages`` realistic messages (multipart text/HTML, some attachments, RFC 2047 subjects, threads, Received
and DKIM-Signature headers): by default the way the inbound filer stores them (raw MIME at ``inbound/<receipt>``, the
parsed document and its parts, the receipt item) with the index entries bulk-loaded through
``MailboxStore.import_messages`` - the filer's one transaction per message costs moto a copy of the whole table each.
The fill is timed and reported apart; it is not the figure.

Then, in rounds whose order alternates (A B C ... then ... C B A), with imaplib as the client:

* **bridge, first session**: a fresh ``Bridge`` (new state dir) - connect, LOGIN, SELECT INBOX and the FETCH a
  message list needs (Thunderbird's)::

      UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date Message-ID In-Reply-To
      References Content-Type)])

* **bridge, second session**: the same bridge, a new connection, the same commands (cold again unless the bridge
  keeps messages across sessions);
* **bridge, ENVELOPE**: the same bridge, a third session, ``UID FETCH 1:* (UID FLAGS ENVELOPE)``;
* **HTTP reference**: the same information the way an HTTP client gets it from the mailbox API - the mailbox, its
  listing in pages of 200, then each message's raw source (``/v1/mail/{id}/raw`` and the presigned URL it redirects
  to), 8 at a time (the bridge's download concurrency), over kept-alive connections, header block cut out. The bridge
  over this is the IMAP layer's own cost;
* **Dovecot**: a real IMAP server (Debian's ``dovecot-imapd``; the script writes a minimal configuration under a
  temporary directory and runs it unprivileged on a loopback port) over a Maildir holding the same messages: the
  header FETCH with its index cache dropped first (cold, it reads every file), warm, and the ENVELOPE FETCH. Skipped,
  with the reason printed, when ``dovecot`` is not installed (``apt-get install -y dovecot-imapd``).

Figures are medians over the rounds; each ratio is the median of per-round ratios (``bench/_common.py``). Results go
to ``bench/results/imap_fetch.json`` (``--save-as`` another name). The figures, and what they say, are in
bench/README.md. One round takes about a minute with the bridge's cache, two without; the fill about half a minute.
"""

from __future__ import annotations

import argparse
import http.client
import imaplib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save

ADDRESS = "support@shop.example"
INBOX = f"{ADDRESS}:inbox"
HEADER_FIELDS = "From To Cc Subject Date Message-ID In-Reply-To References Content-Type"
LIST_QUERY = f"(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})])"
ENVELOPE_QUERY = "(UID FLAGS ENVELOPE)"
CONCURRENCY = 8  # postroom.protocols.bridge.imap.DOWNLOADERS
PAGE = 200


# -- the messages ----------------------------------------------------------------------------------------------------

FIRST = ["Ann", "Bob", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiroshi", "Ines", "Jonas", "Katarzyna", "Liam"]
LAST = ["Example", "Müller", "Okafor", "Nakamura", "García", "Smith", "Novák", "Dubois", "Rossi", "Lindqvist"]
DOMAINS = ["example.org", "mail.example.net", "customer.example", "corp.example.com", "example.de"]
SUBJECTS = [
    "Order {n} - where is my parcel?",
    "Re: Invoice {n}",
    "Return request for order #{n}",
    "Frage zu Bestellung {n} – Lieferzeit",
    "Commande {n} : colis endommagé",
    "Wrong size delivered ({n})",
    "[Support] Cannot log in to my account",
    "Refund for {n}?",
    "注文 {n} について",
    "Fwd: Delivery notification {n}",
]
PARAGRAPH = (
    "Hello, I ordered a pair of boots last week and the tracking page has not changed since Tuesday. "
    "Could you tell me when it will arrive, or whether it was lost on the way? Thank you in advance. "
)


def make_messages(count: int, seed: int = 11) -> list[tuple[bytes, datetime]]:
    """``count`` messages as mail clients and servers write them, each with the time it was received."""
    rng = random.Random(seed)
    base = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    threads: list[tuple[str, list[str], str]] = []  # (message id, references, subject) to reply to
    out = []
    for n in range(count):
        sent = base + timedelta(minutes=7 * n + rng.randint(0, 5))
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        domain = rng.choice(DOMAINS)
        sender = f"{name.split()[0].lower()}.{n % 97}@{domain}"
        # Trace and signature headers come first, folded, as the receiving servers prepend them.
        trace = [f"Return-Path: <{sender}>"]
        for hop in range(rng.randint(2, 4)):
            trace.append(
                f"Received: from mx{hop}.{domain} (mx{hop}.{domain} [192.0.2.{hop + 10}])\r\n\tby "
                f"inbound-smtp.example.com with ESMTPS id {rng.getrandbits(64):016x}\r\n\tfor <{ADDRESS}>; "
                f"{format_datetime(sent)}"
            )
        trace.append(
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1; t={int(sent.timestamp())};"
            f"\r\n\th=from:to:subject:date:message-id:mime-version:content-type;\r\n\tbh="
            f"{rng.getrandbits(256):064x}=;\r\n\tb={rng.getrandbits(1024):0256x}"
        )
        message = EmailMessage()
        message["From"] = f"{name} <{sender}>"
        message["To"] = f"Shop Support <{ADDRESS}>"
        if n % 5 == 0:
            message["Cc"] = f"{rng.choice(FIRST)} <{rng.choice(FIRST).lower()}@{domain}>, orders@shop.example"
        message_id = make_msgid(f"m{n}", domain)
        if threads and n % 3 == 0:
            parent, references, subject = rng.choice(threads)
            message["Subject"] = subject if subject.startswith("Re:") else f"Re: {subject}"
            message["In-Reply-To"] = parent
            references = [*references, parent][-10:]
            message["References"] = " ".join(references)
        else:
            references = []
            message["Subject"] = rng.choice(SUBJECTS).format(n=100000 + n)
        message["Date"] = format_datetime(sent)
        message["Message-ID"] = message_id
        message["X-Mailer"] = rng.choice(["Apple Mail (2.3774)", "Microsoft Outlook 16.0", "Thunderbird 128.3"])
        if n % 4 == 0:
            message["List-Unsubscribe"] = f"<mailto:unsubscribe@{domain}?subject=unsubscribe>"
        text = PARAGRAPH * rng.randint(1, 12)
        message.set_content(text)
        message.add_alternative(f"<html><body><p>{text}</p><p>-- <br>{name}</p></body></html>", subtype="html")
        if n % 10 == 0:
            payload = rng.randbytes(rng.randint(8_000, 60_000))
            message.add_attachment(payload, maintype="application", subtype="pdf", filename=f"receipt-{n}.pdf")
        threads.append((message_id, references, str(message["Subject"])))
        received = sent + timedelta(seconds=rng.randint(1, 30))
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        out.append(("\r\n".join(trace).encode() + b"\r\n" + raw, received))
    return out


# -- filling the mailbox ---------------------------------------------------------------------------------------------


def fill_bulk(messages: list[tuple[bytes, datetime]]) -> None:
    """What the inbound filer stores for each message, with the index entries bulk-loaded."""
    from postroom.core import aws
    from postroom.mailbox.content_keys import raw_key
    from postroom.mailbox.mailbox_store import mail_ulid
    from postroom.receive.filing import Envelope
    from postroom.receive.mime_parse import parse_mail
    from postroom.receive.routing import Destination
    from postroom.wiring.receive_wiring import filer

    inbound = filer()
    s3 = aws.client("s3")
    bucket = inbound._bucket
    destination = inbound.route(ADDRESS)
    assert isinstance(destination, Destination), destination

    def one(pair: tuple[int, tuple[bytes, datetime]]) -> dict[str, Any]:
        n, (raw, received) = pair
        receipt = f"bench{n:06d}{random.Random(n).getrandbits(64):016x}"
        s3.put_object(Bucket=bucket, Key=raw_key(receipt), Body=raw, ContentType="message/rfc822")
        envelope = Envelope(receipt, received, "sender@example.org", [ADDRESS], "ses")
        with tempfile.TemporaryFile() as spool:
            spool.write(raw)
            spool.seek(0)
            mail = parse_mail(spool)
        try:
            inbound._store_parsed(receipt, mail)
            inbound._store.put_receipt(receipt, {"raw_key": raw_key(receipt), "size": mail.size, "origin": "ses"})
            mail_id = "eml_" + mail_ulid(int(received.timestamp() * 1000), receipt, destination.recipient)
            return inbound._index_entry(mail_id, envelope, destination, mail)
        finally:
            mail.close()

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        entries = list(pool.map(one, enumerate(messages)))
    inbound._store.import_messages(INBOX, entries)


def fill_smtp(stack: Any, messages: list[tuple[bytes, datetime]]) -> None:
    """Each message through the stack's inbound SMTP listener (SES's receiving side), filed one by one."""
    import smtplib

    with smtplib.SMTP(stack.inbound.host, stack.inbound.port, timeout=60) as client:
        for raw, _ in messages:
            client.sendmail("sender@example.org", [ADDRESS], raw)


def write_maildir(root: Path, messages: list[tuple[bytes, datetime]]) -> None:
    """The same messages as a Maildir (unread, as in the Inbox), each file dated when it was received."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for n, (raw, received) in enumerate(messages):
        stamp = int(received.timestamp())
        path = root / "cur" / f"{stamp}.M{n}P1.bench,S={len(raw)}:2,"
        path.write_bytes(raw)
        os.utime(path, (stamp, stamp))


# -- IMAP sessions ---------------------------------------------------------------------------------------------------


def imap_session(port: int, user: str, password: str, query: str, expect: int) -> tuple[float, dict[bytes, bytes]]:
    """Connect, LOGIN, SELECT INBOX, UID FETCH 1:* ``query``: the seconds it took, and what came back per
    Message-ID (for the cross-check)."""
    started = time.perf_counter()
    client = imaplib.IMAP4("127.0.0.1", port, timeout=600)
    client.login(user, password)
    typ, count = client.select("INBOX")
    assert typ == "OK", (typ, count)
    assert int(count[0]) == expect, (typ, count)
    typ, data = client.uid("FETCH", "1:*", query)
    elapsed = time.perf_counter() - started
    assert typ == "OK", (typ, data)
    client.logout()
    rows = _fetch_rows(data)
    assert len(rows) == expect, f"{len(rows)} FETCH responses, {expect} messages"
    return elapsed, rows


def _fetch_rows(data: list[Any]) -> dict[bytes, bytes]:
    """One entry per FETCH response, keyed by the message's Message-ID, valued by what identifies its content."""
    rows: dict[bytes, bytes] = {}
    for item in data:
        if isinstance(item, tuple):  # (prefix with a literal, literal): the header fields
            literal = item[1]
            found = re.search(rb"(?im)^message-id:\s*(<[^>]+>)", literal)
            key = found.group(1) if found else item[0]
            size = re.search(rb"RFC822\.SIZE (\d+)", item[0])
            rows[key] = literal.replace(b"\r\n", b"\n") + (b"size=" + size.group(1) if size else b"")
        elif item and item != b")":
            found = re.search(rb'"(<[^>]+>)"\)\)?\s*$', item)  # ENVELOPE's last field is the Message-ID
            rows[found.group(1) if found else item] = b""
    return rows


# -- the HTTP reference ----------------------------------------------------------------------------------------------


class _Connections(threading.local):
    def __init__(self) -> None:
        self.by_host: dict[str, http.client.HTTPConnection] = {}

    def get(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urllib.parse.urlsplit(url)
        connection = self.by_host.get(parts.netloc)
        if connection is None:
            connection = self.by_host[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=120)
        return connection, parts.path + (f"?{parts.query}" if parts.query else "")


def _get(connections: _Connections, url: str, key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    connection, target = connections.get(url)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    for attempt in (1, 2):
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (http.client.HTTPException, ConnectionError):
            connection.close()  # the server closed a kept-alive connection: once more on a new one
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def http_reference(api_url: str, key: str, expect: int) -> tuple[float, dict[bytes, bytes]]:
    """The mailbox, its listing and every raw message straight from the API, ``CONCURRENCY`` at a time."""
    started = time.perf_counter()
    connections = _Connections()
    box = quote(INBOX)
    status, _, _ = _get(connections, f"{api_url}/v1/mailboxes/{box}", key)
    assert status == 200
    ids: list[str] = []
    cursor = ""
    while True:
        query = f"limit={PAGE}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, _, body = _get(connections, f"{api_url}/v1/mailboxes/{box}/messages?{query}", key)
        assert status == 200, body
        page = json.loads(body)
        ids += [m["id"] for m in page["messages"]]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break

    def header(mail_id: str) -> bytes:
        status, headers, body = _get(connections, f"{api_url}/v1/mail/{mail_id}/raw", key)
        location = headers.get("Location") or json.loads(body).get("url")
        assert status in (200, 301, 302, 303, 307), (status, body)
        assert location, body
        status, _, raw = _get(connections, location)
        assert status == 200, status
        end = raw.find(b"\r\n\r\n")
        return raw[: end + 4]

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        headers = list(pool.map(header, ids))
    elapsed = time.perf_counter() - started
    assert len(headers) == expect
    return elapsed, {}


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="@:")


# -- Dovecot ---------------------------------------------------------------------------------------------------------

DOVECOT_CONF = """\
# Written by bench/imap_fetch.py: a throwaway IMAP server on loopback, unprivileged, over one Maildir.
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:{root}/Maildir:LAYOUT=fs:INBOX={root}/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Dovecot:
    """``dovecot -F`` over a Maildir under ``root``, as ``nobody`` when this runs as root, on a free loopback port."""

    user = "bench"
    password = "bench-password"

    def __init__(self, root: Path, messages: list[tuple[bytes, datetime]]) -> None:
        self.root = root
        self.messages = messages
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def missing() -> str | None:
        if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
            return "dovecot is not installed (apt-get install -y dovecot-imapd)"
        return None

    def start(self) -> Dovecot:
        import grp
        import pwd

        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        root = os.geteuid() == 0
        account = pwd.getpwnam("nobody") if root else pwd.getpwuid(os.getuid())
        group = grp.getgrgid(account.pw_gid).gr_name
        for sub in ("run", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        write_maildir(self.root / "Maildir", self.messages)
        (self.root / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{account.pw_uid}:{account.pw_gid}::{self.root}::\n"
        )
        conf = self.root / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(root=self.root, user=account.pw_name, group=group, port=self.port))
        if root:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid)
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=account.pw_uid if root else None,
            group=account.pw_gid if root else None,
            extra_groups=[] if root else None,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.root / "dovecot.log").read_text() if (self.root / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()} {log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    if probe.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not answer on its port within 20 s")

    def drop_cache(self) -> None:
        """Forget what dovecot indexed (the uid list stays): the next SELECT and FETCH read every file again."""
        for path in (self.root / "Maildir").glob("dovecot.index*"):
            path.unlink()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# -- the run ---------------------------------------------------------------------------------------------------------


@contextmanager
def local_stack(tmp: Path) -> Iterator[Any]:
    os.environ["POSTROOM_INBOUND_SMTP_PORT"] = "0"
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    from postroom.local.stack import LocalStack, StackConfig

    config = StackConfig(
        api_port=0,
        outbox=tmp / "outbox",
        parameters={"SendingDomains": "shop.example", "InboundDomains": "shop.example"},
    )
    stack = LocalStack(config).start()
    try:
        yield stack
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fill", choices=["bulk", "smtp"], default="bulk")
    parser.add_argument("--no-dovecot", action="store_true", help="skip the Dovecot reference")
    parser.add_argument("--save-as", default="imap_fetch", help="results file name under bench/results/")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    from postroom.protocols.bridge.runner import Bridge, BridgeConfig

    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="postroom-imapbench-") as tmp_name, local_stack(Path(tmp_name)) as stack:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)  # dovecot, as nobody, reaches its directory through this one
        started = time.perf_counter()
        messages = make_messages(args.messages)
        total_bytes = sum(len(raw) for raw, _ in messages)
        made_s = time.perf_counter() - started
        request = urllib.request.Request(
            f"{stack.api_url}/v1/addresses",
            data=json.dumps({"address": ADDRESS}).encode(),
            headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30).close()
        started = time.perf_counter()
        if args.fill == "bulk":
            fill_bulk(messages)
        else:
            fill_smtp(stack, messages)
        fill_s = time.perf_counter() - started
        print(
            f"{len(messages)} messages, {total_bytes / 1e6:.1f} MB (made in {made_s:.1f} s), "
            f"filed ({args.fill}) in {fill_s:.1f} s",
            flush=True,
        )

        dovecot: Dovecot | None = None
        skipped = Dovecot.missing() if not args.no_dovecot else "--no-dovecot"
        if skipped is None:
            try:
                dovecot = Dovecot(tmp / "dovecot", messages).start()
            except (RuntimeError, OSError) as error:
                skipped = f"dovecot would not start: {error}"
        if skipped:
            print(f"Dovecot reference skipped: {skipped}", flush=True)

        samples: dict[str, list[float]] = {}
        loads: list[float] = []
        checks: dict[str, Any] = {}

        def record(name: str, seconds: float) -> None:
            samples.setdefault(name, []).append(seconds)
            print(f"  {name}: {seconds:.2f} s", flush=True)

        def bridge_round(n: int) -> None:
            state = tmp / f"bridge-{n}"
            config = BridgeConfig(
                api_url=stack.api_url, smtp_port=None, smtps_port=None, imap_port=0, pop3_port=None, state_dir=state
            )
            with Bridge(config) as bridge:
                port = bridge.ports()["imap"]
                seconds, rows = imap_session(port, ADDRESS, stack.api_key, LIST_QUERY, len(messages))
                record("bridge_headers_first", seconds)
                checks.setdefault("bridge_headers", rows)
                seconds, _ = imap_session(port, ADDRESS, stack.api_key, LIST_QUERY, len(messages))
                record("bridge_headers_second", seconds)
                seconds, rows = imap_session(port, ADDRESS, stack.api_key, ENVELOPE_QUERY, len(messages))
                record("bridge_envelope", seconds)
            shutil.rmtree(state, ignore_errors=True)

        def http_round(_: int) -> None:
            seconds, _ = http_reference(stack.api_url, stack.api_key, len(messages))
            record("http_reference", seconds)

        def dovecot_round(_: int) -> None:
            assert dovecot is not None
            dovecot.drop_cache()
            seconds, rows = imap_session(dovecot.port, dovecot.user, dovecot.password, LIST_QUERY, len(messages))
            record("dovecot_headers_cold", seconds)
            checks.setdefault("dovecot_headers", rows)
            seconds, _ = imap_session(dovecot.port, dovecot.user, dovecot.password, LIST_QUERY, len(messages))
            record("dovecot_headers_warm", seconds)
            seconds, _ = imap_session(dovecot.port, dovecot.user, dovecot.password, ENVELOPE_QUERY, len(messages))
            record("dovecot_envelope", seconds)

        steps: list[Callable[[int], None]] = [bridge_round, http_round]
        if dovecot is not None:
            steps.append(dovecot_round)
        try:
            for n in range(args.rounds):
                loads.append(round(os.getloadavg()[0], 2))
                print(f"round {n + 1}/{args.rounds} (load average {loads[-1]:.2f})", flush=True)
                for step in steps if n % 2 == 0 else reversed(steps):
                    step(n)
        finally:
            if dovecot is not None:
                dovecot.stop()

    report(args, samples, checks, fill_s, total_bytes, skipped, loads)


def report(
    args: argparse.Namespace,
    samples: dict[str, list[float]],
    checks: dict[str, Any],
    fill_s: float,
    total_bytes: int,
    skipped: str | None,
    loads: list[float],
) -> None:
    medians = {name: statistics.median(values) for name, values in samples.items()}

    def ratio(a: str, b: str) -> dict[str, float] | None:
        if a not in samples or b not in samples:
            return None
        per_round = [x / y for x, y in zip(samples[a], samples[b], strict=True) if y]
        return {
            "median": round(statistics.median(per_round), 2),
            "min": round(min(per_round), 2),
            "max": round(max(per_round), 2),
        }

    ratios = {
        "bridge_first / http_reference": ratio("bridge_headers_first", "http_reference"),
        "bridge_second / http_reference": ratio("bridge_headers_second", "http_reference"),
        "bridge_first / dovecot_cold": ratio("bridge_headers_first", "dovecot_headers_cold"),
        "bridge_second / dovecot_warm": ratio("bridge_headers_second", "dovecot_headers_warm"),
        "bridge_envelope / dovecot_envelope": ratio("bridge_envelope", "dovecot_envelope"),
    }
    ratios = {name: value for name, value in ratios.items() if value is not None}
    second = ratio("bridge_headers_second", "bridge_headers_first")
    if second is not None:
        ratios["bridge_second / bridge_first"] = second
        kept = second["median"] < 0.5
        second_session = "warm: the bridge kept the messages" if kept else "cold again: nothing kept across sessions"
    else:
        second_session = None
    same = None
    if "bridge_headers" in checks and "dovecot_headers" in checks:
        bridge, dovecot = checks["bridge_headers"], checks["dovecot_headers"]
        same = sum(bridge.get(k) == v for k, v in dovecot.items())
    summary = {
        "messages": args.messages,
        "megabytes": round(total_bytes / 1e6, 2),
        "rounds": args.rounds,
        "fill": args.fill,
        "fill_seconds": round(fill_s, 2),
        "seconds_median": {name: round(value, 3) for name, value in medians.items()},
        "seconds_all": {name: [round(v, 3) for v in values] for name, values in samples.items()},
        "ratios": ratios,
        "second_session": second_session,
        "header_fetch_identical_to_dovecot": same,
        "dovecot": skipped or "dovecot " + _dovecot_version(),
        "load_average_per_round": loads,
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    print()
    for name, value in medians.items():
        print(f"{name:>24}: {value:7.2f} s  (median of {len(samples[name])})")
    for name, value in ratios.items():
        print(f"{name:>36}: {value['median']:.2f} (min {value['min']:.2f}, max {value['max']:.2f})")
    if second_session:
        print(f"second session: {second_session}")
    if same is not None:
        print(f"header FETCH answers identical to Dovecot's: {same} of {len(checks['dovecot_headers'])}")
    path = save(args.save_as, summary)
    print(json.dumps(summary, indent=2))
    print(f"saved {path}")


def _dovecot_version() -> str:
    try:
        return subprocess.run(
            [shutil.which("dovecot") or "/usr/sbin/dovecot", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


if __name__ == "__main__":
    main()
