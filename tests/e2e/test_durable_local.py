"""The local stack keeps what it accepted across a crash: a real ``postroom local`` process is killed with SIGKILL in
the middle of a burst, started again on the same state directory, and every message answered ``202`` must reach the
sandbox's SMTP sink exactly once (read back from the sink's .eml files by Message-ID)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from postroom.accept.mime_build import postroom_id_from_message_id
from postroom.core.idempotency import IdempotencyAlreadyInProgressError
from postroom.local.handlers import LocalLambdaContext
from postroom.local.stack import LocalStack, StackConfig, repo_root
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import services

pytestmark = pytest.mark.e2e

BURST = 500
SENDERS = 4
# Upper bounds only, generous for a loaded CI machine: the second start replays the journal first.
START_TIMEOUT = 300
DELIVERY_TIMEOUT = 600


POSTROOM = [sys.executable, "-c", "import sys; from postroom.cli import main; sys.exit(main())"]


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    api_url: str
    api_key: str
    banner: str


def start_local(state: Path, outbox: Path, log: Path) -> Running:
    env = {
        **os.environ,
        # Every listener on a free port, so the test runs beside other stacks; the sandbox sink writes to `outbox`.
        "POSTROOM_API_PORT": "0",
        "POSTROOM_SUBMISSION_PORT": "0",
        "POSTROOM_IMAP_PORT": "0",
        "POSTROOM_POP3_PORT": "0",
        "POSTROOM_INBOUND_SMTP_PORT": "0",
        "POSTROOM_OUTBOX": str(outbox),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("POSTROOM_DNS_NAMESERVERS", None)  # the sandbox: every MX is the sink on loopback
    with log.open("wb") as out:
        process = subprocess.Popen(
            # postroom.cli is a package without __main__: call its entry point, as the `postroom` script does.
            [*POSTROOM, "local", "--state-dir", str(state)],
            cwd=repo_root(),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ctrl-C stops the stack." in text:
            api = re.search(r"^\s+API\s+(http://\S+)", text, re.MULTILINE)
            key = re.search(r"^\s+API key\s+(\S+)", text, re.MULTILINE)
            assert api, text
            assert key, text
            return Running(process, api.group(1), key.group(1), text)
        if process.poll() is not None:
            raise AssertionError(f"postroom local exited with {process.returncode}:\n{text}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"postroom local did not start in {START_TIMEOUT} s:\n{log.read_text(errors='replace')}")


def send(stack: Running, n: int) -> str | None:
    """POST one message; its id when the answer was 202, else None (the process may be dying)."""
    body = {"from": "Shop <shop@example.com>", "to": ["ann@example.org"], "subject": f"burst {n}", "text": f"#{n}"}
    request = urllib.request.Request(
        f"{stack.api_url}/v1/messages",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(json.loads(response.read())["id"]) if response.status == 202 else None
    except (OSError, urllib.error.URLError, ValueError):
        return None


def delivered(outbox: Path) -> list[tuple[int, str]]:
    """(file number, Postroom id) of every message the sink stored, in the order it stored them."""
    found = []
    for path in outbox.glob("*.eml"):
        with path.open("rb") as handle:
            headers = BytesHeaderParser().parse(handle)
        msg_id = postroom_id_from_message_id(str(headers.get("Message-ID", "")))
        if msg_id:
            found.append((int(path.stem), msg_id))
    return sorted(found)


def test_kill_9_during_a_burst_loses_no_accepted_message_and_sends_none_twice(tmp_path: Path) -> None:
    state, outbox = tmp_path / "state", tmp_path / "outbox"
    seed = random.randrange(1 << 30)
    kill_after = random.Random(seed).randrange(50, 300)  # bounded so that replay and delivery fit CI time
    # GIVEN a local stack with durable state, taking a burst of sends from four clients
    first = start_local(state, outbox, tmp_path / "first.log")
    accepted: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()
    numbers = iter(range(BURST))

    def client() -> None:
        while not killed.is_set():
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            msg_id = send(first, n)
            with lock:
                if msg_id is not None and not killed.is_set():
                    accepted.append(msg_id)
                # WHEN the process is killed with SIGKILL after a random number of 202 answers
                if len(accepted) >= kill_after and not killed.is_set():
                    os.kill(first.process.pid, signal.SIGKILL)
                    killed.set()

    threads = [threading.Thread(target=client) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first.process.wait(timeout=30)
    assert killed.is_set()
    assert first.process.returncode == -signal.SIGKILL
    before_restart = delivered(outbox)

    # ... and started again on the same state directory
    second = start_local(state, outbox, tmp_path / "second.log")
    try:
        # THEN every message answered 202 reaches the sink ...
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            stored = Counter(msg_id for _, msg_id in delivered(outbox))
            if all(stored[msg_id] for msg_id in accepted):
                break
            time.sleep(0.5)
        stored = Counter(msg_id for _, msg_id in delivered(outbox))
        missing = [msg_id for msg_id in accepted if not stored[msg_id]]
        context = f"seed {seed}: killed after {kill_after} accepted; {len(before_restart)} delivered before the kill"
        assert not missing, f"{len(missing)} of {len(accepted)} accepted messages never delivered ({context})"
        # ... and no message is delivered twice: the send-once guard's records survived the kill with the queue's.
        time.sleep(2)  # a resurrected queue message would be handed over again within the poller's next receives
        twice = {msg_id: count for msg_id, count in Counter(i for _, i in delivered(outbox)).items() if count > 1}
        assert not twice, f"delivered more than once: {twice} ({context})"
        assert "records replayed" in second.banner
    finally:
        second.process.send_signal(signal.SIGTERM)
        second.process.wait(timeout=120)


class Killed(BaseException):
    """Stands in for SIGKILL inside a guarded send: not an Exception, so Powertools leaves its record in progress."""


def test_a_restart_ends_the_send_guards_the_killed_process_left_in_progress(
    tmp_path: Path, sink: RecordingSink, dns: LoopbackDnsServer
) -> None:
    config = StackConfig(
        api_port=0,
        sandbox=False,
        submission_port=None,
        imap_port=None,
        pop3_port=None,
        state_dir=tmp_path / "state",
        parameters={"DnsNameservers": f"127.0.0.1:{dns.port}", "SmtpPort": str(sink.port)},
    )
    key = "msg_01killed|smtp|ann@example.org#0"
    context = LocalLambdaContext("WorkerFunction", timeout_seconds=120)

    def killed_mid_send() -> list[str]:
        raise Killed

    # GIVEN a worker's send-once guard left in progress by a process that died inside the send
    stack = LocalStack(config).start()
    try:
        once = services().once("worker-send")
        assert once is not None
        with pytest.raises(Killed):
            once.run(key, killed_mid_send, context=context)
        with pytest.raises(IdempotencyAlreadyInProgressError):  # until the dead invocation's deadline, 120 s away
            once.run(key, lambda: ["sent"], context=context)
    finally:
        stack.stop()
    # WHEN the stack starts again on the same state
    stack = LocalStack(config).start()
    try:
        once = services().once("worker-send")
        assert once is not None
        # THEN the guard runs the send again at once, as Lambda would after the dead invocation's timeout
        assert once.run(key, lambda: ["sent"], context=LocalLambdaContext("WorkerFunction")) == (["sent"], False)
    finally:
        stack.stop()
