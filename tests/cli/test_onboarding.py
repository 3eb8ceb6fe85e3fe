"""What a new user does, using only the CLI (issue 19, "Done means"): from the key `postroom local` prints to a second
sending domain, its records published on the local stack's DNS server (which plays the user's DNS provider there),
verified, and a first send from it delivered to the recipient's MX, DKIM-signed for that domain. The stack is the
sandbox `postroom local` runs; the README's onboarding session is this one."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import dkim
import dns.resolver
import pytest

from tests.cli.conftest import POSTROOM, CliStack, started

DOMAIN = "news.example"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliStack]:
    with started(tmp_path_factory.mktemp("home"), sandbox=True) as running:
        yield running


def test_a_new_user_adds_a_domain_publishes_it_verifies_it_and_sends_from_it(cli: CliStack) -> None:
    # GIVEN only what `postroom local` printed (its URL and key), saved as the default profile
    bare = {k: v for k, v in cli.env.items() if k not in ("POSTROOM_URL", "POSTROOM_KEY")}

    def postroom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(POSTROOM), *args], env=bare, capture_output=True, text=True, timeout=60, check=False)

    def as_json(*args: str, code: int = 0) -> Any:
        done = postroom(*args, "--json")
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)

    as_json("login", "--url", cli.stack.api_url, "--key", cli.stack.api_key)
    # WHEN they add a second sending domain THEN they get the records to publish, each with its purpose
    added = as_json("domains", "add", DOMAIN, "--delivery", "smtp")
    assert added["state"] == "pending"
    purposes = {r["purpose"] for r in added["records"] if r.get("required", True)}
    assert {"dkim", "spf"} <= purposes
    # AND before the records are published, a send from it is refused naming a missing record (exit 1) ...
    refused = as_json(
        "send", "--from", f"hello@{DOMAIN}", "--to", "ann@example.org", "--subject", "Hi", "--text", "x", code=1
    )
    assert refused["error"]["field"] == "from"
    assert "not verified yet" in refused["error"]["message"]
    # ... and verify says "not yet" with exit code 6, naming what is missing
    pending = as_json("domains", "verify", DOMAIN, code=6)
    assert pending["state"] == "pending"
    assert any("missing" in p for p in pending["problems"])
    # WHEN the records are published as printed (here on the local DNS server; on AWS at the DNS provider)
    published = as_json("domains", "publish-local", DOMAIN)
    assert published["published"] == added["records"]
    # THEN verify finds them all and the domain is verified
    verified = as_json("domains", "verify", DOMAIN)
    assert verified["state"] == "verified", verified
    assert {r["status"] for r in verified["records"] if r.get("required", True)} == {"published"}
    # WHEN they send their first message from it
    sent = as_json(
        "send", "--from", f"News <hello@{DOMAIN}>", "--to", "ann@example.org", "--subject", "First issue",
        "--text", "Hello from news.example.",
    )  # fmt: skip
    # THEN it is delivered, and the timeline says so
    deadline = time.monotonic() + 30
    shown = as_json("messages", "show", sent["id"])
    while shown["message"]["status"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.3)
        shown = as_json("messages", "show", sent["id"])
    assert shown["message"]["status"] == "delivered", shown
    assert "delivered" in [e["type"] for e in shown["events"]]
    # AND the MX got it signed with the new domain's published DKIM key (verified against the same DNS)
    (received,) = [m for m in cli.sink.messages if b"Hello from news.example." in m.content]
    assert received.rcpt_tos == ("ann@example.org",)

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], cli.dns.port

    def dns_txt(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
        return b"".join(b"".join(r.strings) for r in answer)

    assert b"d=news.example" in received.content
    assert dkim.verify(received.content, dnsfunc=dns_txt)
