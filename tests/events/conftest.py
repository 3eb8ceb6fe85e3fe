"""Fixtures for the events, suppression, webhook and tracking tests: the moto-backed stack with every function of the
template loaded, real SMTP and DNS peers on loopback, a webhook receiver on loopback, and SQS drained into the real
handlers the way Lambda's event source mapping would (postroom.local.poller)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from postroom.local import template as tpl
from postroom.local.gateway import build_event
from postroom.local.handlers import LocalFunction
from postroom.local.poller import SqsPoller
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services
from tests.conftest import ROOT, Stack, load_function, start_stack

EXTRA_FUNCTIONS = ("EventsFunction", "WebhookSenderFunction", "TrackingFunction")
SIGNING_KEY = "test-signing-key-0123456789abcdef"


@dataclass
class EventsStack:
    stack: Stack
    functions: dict[str, LocalFunction]
    sink: RecordingSink

    def call(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        key: str | None = "default",
        function: str = "SendApiFunction",
    ) -> tuple[int, dict[str, Any]]:
        """An API Gateway proxy event for ``method target`` (path and query) into the named function."""
        path, _, query = target.partition("?")
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.stack.api_key if key == 'default' else key}"
        event = build_event(
            method=method,
            path=path,
            resource=path,
            query=query,
            headers=list(headers.items()),
            body=json.dumps(body).encode() if body is not None else b"",
            source_ip="127.0.0.1",
            path_parameters={},
            stage="api",
        )
        result = self.functions[function].invoke(event)
        text = result.get("body") or ""
        try:
            return result["statusCode"], json.loads(text)
        except json.JSONDecodeError:  # empty, HTML or a redirect: the text and the headers
            headers = dict(result.get("headers") or {})
            headers |= {name: values[-1] for name, values in (result.get("multiValueHeaders") or {}).items()}
            return result["statusCode"], {"text": text, "headers": headers}

    def send(self, body: dict[str, Any], *, key: str = "default") -> str:
        status, answer = self.call("POST", "/v1/messages", body, key=key)
        assert status == 202, answer
        return answer["id"]

    def get(self, target: str, *, key: str = "default") -> tuple[int, dict[str, Any]]:
        return self.call("GET", target, key=key)

    def drain(self, queue: str, function: str, *, rounds: int = 20) -> int:
        """Hand the queue's messages to the function until it is empty (or ``rounds`` polls found nothing new)."""
        resources = self.stack.resources
        poller = SqsPoller(
            sqs=boto3.client("sqs"),
            queue_url=resources[queue]["Ref"],
            queue_arn=resources[queue]["Arn"],
            invoke=self.functions[function].invoke,
            wait_seconds=0,
        )
        handled = 0
        for _ in range(rounds):
            count = poller.poll_once()
            if not count:
                break
            handled += count
        return handled

    def deliver(self) -> int:
        return self.drain("DeliveryQueue", "WorkerFunction")

    def webhooks(self) -> int:
        return self.drain("WebhookQueue", "WebhookSenderFunction")

    def ses_events(self) -> int:
        return self.drain("SesEventsQueue", "EventsFunction")

    def record(self, msg_id: str) -> dict[str, Any]:
        status, body = self.get(f"/v1/messages/{msg_id}")
        assert status == 200, body
        return body

    def timeline(self, msg_id: str) -> dict[str, Any]:
        status, body = self.get(f"/v1/messages/{msg_id}/events")
        assert status == 200, body
        return body


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@pytest.fixture
def dns(sink: RecordingSink) -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer(catch_all_mx="127.0.0.1") as server:
        yield server


@pytest.fixture
def events_stack(monkeypatch: pytest.MonkeyPatch, sink: RecordingSink, dns: LoopbackDnsServer) -> Iterator[EventsStack]:
    """GIVEN a stack whose SMTP deliveries reach the loopback sink, webhooks may go to loopback, links are signed."""
    monkeypatch.setenv("POSTROOM_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("POSTROOM_EVENT_FEED_SETTLE_SECONDS", "0")
    monkeypatch.setenv("POSTROOM_WEBHOOK_RETRY_SCHEDULE", "0,0,0")
    monkeypatch.setenv("POSTROOM_WEBHOOK_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("POSTROOM_SMTP_TIMEOUT", "2")
    monkeypatch.setenv("POSTROOM_RETRY_BASE_SECONDS", "0")
    with mock_aws():
        stack = start_stack(
            monkeypatch,
            {"DnsNameservers": f"127.0.0.1:{dns.port}", "SmtpPort": str(sink.port), "HeloName": "postroom.test"},
        )
        template = tpl.load_template(ROOT / "template.yaml")
        params = stack.resources.parameters
        for logical_id in EXTRA_FUNCTIONS:
            for name, value in tpl.function_environment(template, logical_id, stack.resources, params).items():
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("POSTROOM_PUBLIC_URL", "http://links.postroom.test")
        reset_services()
        functions = {"WorkerFunction": stack.worker, "SendApiFunction": stack.send_api}
        functions |= {logical_id: load_function(template, logical_id) for logical_id in EXTRA_FUNCTIONS}
        yield EventsStack(stack, functions, sink)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint on loopback: records every POST and answers with the scripted statuses, then 204."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/postroom"

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            me = state["receiver"]
            me.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = me.script.pop(0) if me.script else 204
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()
