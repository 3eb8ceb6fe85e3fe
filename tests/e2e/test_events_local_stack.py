"""The events feature end to end in the local stack (`postroom local`'s harness): a bouncing address on a real SMTP
server on loopback gets suppressed, a webhook receiver on loopback is called back with signed events, the message's
timeline and the event feed show what happened, and a tracked link redirects through the local gateway."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from postroom.local.stack import LocalStack
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink, Stage
from tests.e2e.test_local_stack import call, start, wait_for_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@pytest.fixture
def dns(sink: RecordingSink) -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer(catch_all_mx="127.0.0.1") as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def local(sink: RecordingSink, dns: LoopbackDnsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    stack = start(sink, dns, monkeypatch, POSTROOM_RETRY_BASE_SECONDS="0", POSTROOM_EVENT_FEED_SETTLE_SECONDS="0.5")
    yield stack
    stack.stop()


def wait_until(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any) -> None:
        return None


def test_bounce_suppresses_webhooks_arrive_signed_timeline_and_feed(
    local: LocalStack, sink: RecordingSink, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    # GIVEN a webhook subscription to every event, and an MX that does not know gone@example.org
    status, hook = call(local, "POST", "/v1/webhooks", {"url": url})
    assert status == 201, hook
    sink.script(Stage.RCPT, "550 5.1.1 <gone@example.org>: user unknown", match="gone@")
    # WHEN a message goes to gone@ and ann@
    message = {"from": "orders@shop.example", "subject": "Order", "text": "Thanks", "metadata": {"order": "7"}}
    _, first = call(local, "POST", "/v1/messages", {**message, "to": ["gone@example.org", "ann@example.org"]})
    wait_for_status(local, first["id"], {"partially_delivered"})
    # THEN the receiver is called back with both events, signed so that the standardwebhooks package verifies them
    wait_until(lambda: len(received) >= 2)
    payloads = [Webhook(hook["secret"]).verify(body, headers) for headers, body in received]
    assert {(p["type"], p["data"]["recipient"]) for p in payloads} == {
        ("bounced", "gone@example.org"),
        ("delivered", "ann@example.org"),
    }
    assert all(p["data"]["metadata"] == {"order": "7"} for p in payloads)
    # and the message's timeline says the same, per recipient
    _, timeline = call(local, "GET", f"/v1/messages/{first['id']}/events")
    assert timeline["recipients"]["gone@example.org"]["events"][0]["details"]["bounce_type"] == "hard"
    # WHEN the bounced address is mailed again
    _, second = call(local, "POST", "/v1/messages", {**message, "to": ["gone@example.org"]})
    # THEN it is suppressed without a send, and that is an event too
    record = wait_for_status(local, second["id"], {"suppressed"})
    assert record["recipients"][0]["attempts"] == 0
    wait_until(lambda: len(received) >= 3)
    assert Webhook(hook["secret"]).verify(received[2][1], received[2][0])["type"] == "suppressed"
    assert len(sink.messages) == 1
    # AND the feed, read page by page, has each of the three events once, in order
    time.sleep(0.6)  # the settle window
    seen, cursor = [], None
    while True:
        _, page = call(local, "GET", "/v1/events?limit=2" + (f"&after={cursor}" if cursor else ""))
        seen += [e["id"] for e in page["data"]]
        cursor = page["next"]
        if not page["has_more"]:
            break
    assert seen == sorted(
        {p["data"]["id"] for p in [*payloads, Webhook(hook["secret"]).verify(received[2][1], received[2][0])]}
    )
