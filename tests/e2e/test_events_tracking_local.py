"""Events in the local stack that need no stack of their own: a tracked link redirects through the local gateway,
and the SES path gets its delivery and bounce events. Apart from test_events_local_stack.py, whose test reads the
whole event feed and every webhook call and so needs a fresh stack; these two share one stack and sink (starting a
stack costs 15-20 s under load): neither lists anything beyond its own message, and only the first uses the sink."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest

from postroom.local.stack import LocalStack
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services
from postroom.wiring.worker_batch import reset_resolver
from tests.conftest import clean_aws_env
from tests.e2e.test_events_local_stack import NoRedirect
from tests.e2e.test_local_stack import call, start, wait_for_status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@pytest.fixture(scope="module")
def local(sink: RecordingSink) -> Iterator[LocalStack]:
    with LoopbackDnsServer(catch_all_mx="127.0.0.1") as dns, pytest.MonkeyPatch.context() as monkeypatch:
        clean_aws_env(monkeypatch)
        reset_services()
        reset_resolver()
        stack = start(sink, dns, monkeypatch, POSTROOM_RETRY_BASE_SECONDS="0", POSTROOM_EVENT_FEED_SETTLE_SECONDS="0.5")
        yield stack
        stack.stop()


@pytest.fixture(autouse=True)
def _clean_aws_env(local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``local`` cleaned the environment once for this module and then set the
    stack's settings there, which its pollers and handlers read between and during tests."""


def test_tracked_link_redirects_through_the_local_gateway(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN a message with click tracking, delivered to the loopback MX
    html = '<p><a href="https://shop.example/track?id=7">Track your parcel</a></p>'
    _, sent = call(
        local,
        "POST",
        "/v1/messages",
        {
            "from": "orders@shop.example",
            "to": "ann@example.org",
            "subject": "Parcel",
            "html": html,
            "track_clicks": True,
        },
    )
    wait_for_status(local, sent["id"], {"delivered"})
    mail = message_from_bytes(sink.messages[0].content, policy=policy.default)
    (link,) = re.findall(r'href="([^"]+)"', mail.get_body(("html",)).get_content())
    assert link.startswith(f"{local.api_url}/t/c/")
    # WHEN the recipient follows it
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(link, timeout=10)
    # THEN the gateway redirects to the original URL and the click is in the timeline
    assert answer.value.code == 302
    assert answer.value.headers["Location"] == "https://shop.example/track?id=7"
    _, timeline = call(local, "GET", f"/v1/messages/{sent['id']}/events")
    assert [e["type"] for e in timeline["data"]] == ["delivered", "clicked"]


def test_ses_path_gets_its_delivery_and_bounce_events_locally(local: LocalStack) -> None:
    # GIVEN a message sent through SES to an ordinary address and to SES's bounce simulator
    _, sent = call(
        local,
        "POST",
        "/v1/messages",
        {
            "from": "orders@shop.example",
            "to": ["ann@example.org", "bounce@simulator.amazonses.com"],
            "subject": "Via SES",
            "text": "Hello",
            "delivery": "ses",
        },
    )
    # WHEN SES's events come back (published by the local stack as SES would, through the template's topic and queue)
    record = wait_for_status(local, sent["id"], {"partially_delivered"})
    # THEN each recipient has SES's verdict, the timeline has every step once, and the bounce is suppressed
    by_address = {r["address"]: r for r in record["recipients"]}
    assert by_address["ann@example.org"]["status"] == "delivered"
    assert by_address["bounce@simulator.amazonses.com"]["status"] == "bounced"
    assert by_address["bounce@simulator.amazonses.com"]["enhanced_status"] == "5.1.1"
    _, timeline = call(local, "GET", f"/v1/messages/{sent['id']}/events")
    assert sorted((e["recipient"], e["type"]) for e in timeline["data"]) == [
        ("ann@example.org", "delivered"),
        ("ann@example.org", "sent"),
        ("bounce@simulator.amazonses.com", "bounced"),
        ("bounce@simulator.amazonses.com", "sent"),
    ]
    _, listed = call(local, "GET", "/v1/suppressions?address=bounce@simulator.amazonses.com")
    assert [e["reason"] for e in listed["data"]] == ["hard_bounce"]
