"""One local stack per CLI test module (the same harness `postroom local` runs: moto, the HTTP gateway, the pollers,
a loopback DNS server as the internet's DNS and an SMTP sink as every MX), and the installed `postroom` script run
as a subprocess against it, with POSTROOM_URL/POSTROOM_KEY and a throwaway config directory."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from postroom.local.stack import LocalStack, StackConfig
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink

POSTROOM = Path(sys.executable).with_name("postroom")
REPO = Path(__file__).resolve().parents[2]
EGRESS_IP = "203.0.113.25"


@pytest.fixture(autouse=True)
def _clean_aws_env() -> None:
    """Overrides the suite's per-test environment reset: the module's stack set the environment its in-process
    handlers read, and it must stay for every test of the module (the stack fixture itself starts from a clean one)."""


@dataclass
class CliStack:
    stack: LocalStack
    dns: LoopbackDnsServer
    sink: RecordingSink
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, key: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if key is not None:
            env["POSTROOM_KEY"] = key
        return subprocess.run(
            [str(POSTROOM), *args], env=env, capture_output=True, text=True, timeout=60, input=stdin, check=False
        )

    def json(self, *args: str, key: str | None = None, code: int = 0) -> Any:
        done = self.run(*args, "--json", key=key)
        assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)


@contextmanager
def started(home: Path, *, sandbox: bool) -> Iterator[CliStack]:
    """A local stack on loopback, its environment set for its in-process handlers and restored afterwards.

    ``sandbox``: exactly what `postroom local` runs (its own DNS server, whose zone file plays the DNS provider, and
    a sink as every MX), rooted in ``home`` through POSTROOM_HOME so its .postroom files stay out of the checkout.
    Otherwise a DNS server and a sink of the test's own, the stack pointed at them as at the internet."""
    with contextlib.ExitStack() as scope:
        patch = scope.enter_context(pytest.MonkeyPatch.context())
        for name in list(os.environ):
            if name.startswith(("POSTROOM_", "AWS_")):
                patch.delenv(name)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Postroom",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POSTROOM_RETRY_BASE_SECONDS": "0",
            "POSTROOM_SMTP_TIMEOUT": "2",
            "POSTROOM_SMTP_EGRESS_IPS": EGRESS_IP,
            "POSTROOM_EVENT_FEED_SETTLE_SECONDS": "0",
        }.items():
            patch.setenv(name, value)
        parameters = {"SendingDomains": "shop.example", "DefaultDelivery": "smtp", "HeloName": "postroom.test",
                      "InboundDomains": "in.shop.example"}  # fmt: skip
        root = home / "checkout"
        root.mkdir()
        for name in ("template.yaml", "functions"):
            (root / name).symlink_to(REPO / name)
        patch.setenv("POSTROOM_HOME", str(root))
        if sandbox:
            dns, sink = None, None
        else:
            sink = scope.enter_context(RecordingSink())
            zone = {"example.org": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}}
            dns = scope.enter_context(LoopbackDnsServer(zone=zone))
            parameters |= {"DnsNameservers": f"127.0.0.1:{dns.port}", "SmtpPort": str(sink.port)}
        config = StackConfig(api_port=0, sandbox=sandbox, poll_wait_seconds=1, submission_port=None, imap_port=None,
                             pop3_port=None, root=root, outbox=home / "outbox", parameters=parameters)  # fmt: skip
        stack = LocalStack(config).start()
        scope.callback(stack.stop)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "AWS_"))}
        env.update(
            POSTROOM_URL=stack.api_url,
            POSTROOM_KEY=stack.api_key,
            POSTROOM_HOME=str(root),
            XDG_CONFIG_HOME=str(home / "config"),
            HOME=str(home),
            COLUMNS="200",
        )
        yield CliStack(stack, dns or stack.dns, sink or stack.sink, home, env)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliStack]:
    with started(tmp_path_factory.mktemp("home"), sandbox=False) as running:
        yield running
