"""End to end through the local stack: a shop's order webhook, delivered three times over HTTP, becomes exactly one
confirmation mail at the customer's MX; a message with send_at is fired by the local scheduler and delivered."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from postroom.cli import main
from postroom.commerce.signatures import sign
from postroom.local.stack import LocalStack, StackConfig
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink

pytestmark = pytest.mark.e2e

ORDER = (Path(__file__).resolve().parents[1] / "fixtures" / "shopify" / "orders_create.json").read_bytes()
SECRET = "e2e-webhook-secret"


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalStack, RecordingSink]]:
    monkeypatch.setenv("POSTROOM_SMTP_TIMEOUT", "2")
    with RecordingSink() as sink, LoopbackDnsServer(catch_all_mx="127.0.0.1") as dns:
        config = StackConfig(
            api_port=0,
            sandbox=False,
            parameters={
                "SendingDomains": "shop.example",
                "DefaultDelivery": "smtp",
                "DnsNameservers": f"127.0.0.1:{dns.port}",
                "SmtpPort": str(sink.port),
                "HeloName": "postroom.test",
                # The order's customer is at example.com, which the local stack otherwise receives for itself.
                "InboundDomains": "",
                "InboundCatchAll": "",
            },
        )
        stack = LocalStack(config).start()
        try:
            yield stack, sink
        finally:
            stack.stop()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, method="POST", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_shopify_webhook_delivered_three_times_is_one_mail(
    local: tuple[LocalStack, RecordingSink], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, sink = local
    # GIVEN a store added with the CLI, as the README tells a new user to
    command = ["stores", "add", "e2e-shop", "--platform", "shopify", "--secret", SECRET, "--shop-name", "E2E Shop"]
    command += ["--from", "E2E Shop <orders@shop.example>", "--table", os.environ["POSTROOM_TABLE"]]
    command += ["--secret-prefix", os.environ["POSTROOM_STORE_SECRET_PREFIX"]]
    assert main(command) == 0
    assert "/v1/hooks/shopify/e2e-shop" in capsys.readouterr().out
    # WHEN Shopify delivers the order webhook three times (retries keep the webhook id)
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign(ORDER, SECRET),
        "X-Shopify-Shop-Domain": "e2e-shop.myshopify.com",
        "X-Shopify-Webhook-Id": "e2e-1",
    }
    url = f"{stack.api_url}/v1/hooks/shopify/e2e-shop"
    answers = []
    for _ in range(3):
        started = time.perf_counter()
        answers.append((*post(url, ORDER, headers), time.perf_counter() - started))
    # THEN each answer is a fast 200, and the customer's MX receives exactly one confirmation
    assert [(status, body["status"]) for status, body, _ in answers] == [
        (200, "queued"),
        (200, "duplicate"),
        (200, "duplicate"),
    ]
    assert all(seconds < 2 for *_, seconds in answers)
    wait_for(lambda: len(sink.messages) >= 1)
    time.sleep(1.5)  # room for a second mail to show up, if there were one
    assert len(sink.messages) == 1
    envelope = sink.messages[0]
    assert list(envelope.rcpt_tos) == ["jon@example.com"]
    mail = message_from_bytes(envelope.content, policy=policy.default)
    assert mail["Subject"] == "Order #9999 confirmed — thank you, John!"
    assert "IPod Nano - 8GB" in mail.get_body(("html",)).get_content()
    # and a bad signature is refused
    assert post(url, ORDER, {**headers, "X-Shopify-Hmac-Sha256": sign(ORDER, "guess")})[0] == 401


def test_send_at_is_fired_by_the_local_scheduler(local: tuple[LocalStack, RecordingSink]) -> None:
    stack, sink = local
    due = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    status, body = post(
        f"{stack.api_url}/v1/messages",
        json.dumps(
            {"from": "orders@shop.example", "to": "ann@example.org", "subject": "Later", "text": "x", "send_at": due}
        ).encode(),
        {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
    )
    assert (status, body["status"]) == (202, "scheduled")
    assert sink.messages == []
    wait_for(lambda: len(sink.messages) == 1)
    assert stack.firer.fired == 1
