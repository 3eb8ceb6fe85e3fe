"""Real peers for the deliverability tests: a DNS server and SMTP sinks on loopback, and an emulated deployment
(moto, in-process) whose worker delivers over SMTP to them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from postroom.local.poller import build_sqs_event
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from tests.conftest import Stack, start_stack

SAMPLES = Path(__file__).parent / "samples"
HELO_NAME = "relay.postroom.test"


def sample(name: str, message_id: str = "") -> bytes:
    """A stored DSN sample, with ``{id}`` replaced by the id part of a Postroom Message-ID."""
    return (SAMPLES / name).read_bytes().replace(b"{id}", message_id.removeprefix("msg_").encode())


@pytest.fixture(scope="module")
def dns_server() -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer() as server:
        yield server


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@dataclass
class SmtpStack:
    """A deployment whose sending domains deliver over SMTP to ``sink``, MX records coming from ``dns``."""

    stack: Stack
    sink: RecordingSink
    dns: LoopbackDnsServer

    def send(self, **fields: Any) -> str:
        body = {"from": "Shop <orders@shop.example>", "subject": "Your order", "text": "Thanks!", **fields}
        status, answer = self.stack.request("POST", "/v1/messages", body)
        assert status == 202, answer
        return answer["id"]

    def run_worker(self) -> dict[str, Any]:
        """One worker invocation on whatever is queued, as the SQS event source would make it."""
        messages = self.stack.queue_messages()
        assert messages, "nothing queued"
        event = build_sqs_event(messages, self.stack.resources["DeliveryQueue"]["Arn"], "us-east-1")
        try:
            return self.stack.worker.invoke(event)
        except BatchProcessingError:  # every record deferred: Lambda reports the batch failed, SQS keeps it
            return {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}

    def status(self, message_id: str) -> dict[str, Any]:
        code, record = self.stack.request("GET", f"/v1/messages/{message_id}")
        assert code == 200, record
        return record


def smtp_stack_for(
    monkeypatch: pytest.MonkeyPatch,
    dns_server: LoopbackDnsServer,
    sink: RecordingSink,
    parameters: dict[str, str] | None = None,
) -> Iterator[SmtpStack]:
    """An emulated deployment delivering over SMTP: example.org's MX is ``sink``. ``parameters`` are template
    parameter overrides; environment variables set before this count too."""
    dns_server.set_zone({"example.org": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}})
    parameters = {
        "DefaultDelivery": "smtp",
        "DnsNameservers": f"127.0.0.1:{dns_server.port}",
        "SmtpPort": str(sink.port),
        "HeloName": HELO_NAME,
        **(parameters or {}),
    }
    with mock_aws():
        yield SmtpStack(start_stack(monkeypatch, parameters), sink, dns_server)


@pytest.fixture
def smtp_stack(
    monkeypatch: pytest.MonkeyPatch, dns_server: LoopbackDnsServer, sink: RecordingSink
) -> Iterator[SmtpStack]:
    yield from smtp_stack_for(monkeypatch, dns_server, sink)
