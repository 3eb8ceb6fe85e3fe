"""The per-tenant reputation breaker, fault-style: a tenant whose bounce rate crosses the threshold is paused (new
sends 503, queued mail held and not lost, a ``sending_paused`` event and webhook), other tenants keep sending, and an
operator resumes it through the API. The rolling window is checked with a fake clock against the real table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from postroom.core.auth import ALL_SCOPES as ALL_KEY_SCOPES
from postroom.core.clock import isoformat, now_iso
from postroom.core.reputation_settings import ReputationSettings
from postroom.core.sending_pause import ALL_SCOPES, SendingPauses
from postroom.events.event_model import Event, EventType, new_event_id
from postroom.events.reputation import ReputationBreaker
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services, services
from tests.conftest import Stack, create_key
from tests.events.conftest import EventsStack, Receiver
from tests.events.test_ses_events import bounce, publish, sent_via_ses, ses_event


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _event(kind: EventType, *, tenant_domain: str = "shop.example", hard: bool = True) -> Event:
    at = now_iso()
    event = Event(
        id=new_event_id(),
        type=kind,
        message_id="msg_01m8vjq133ndx0evb0yht6vqx8",
        recipient="someone@example.org",
        occurred_at=at,
        recorded_at=at,
        source="smtp",
        details={"bounce_type": "hard" if hard else "soft"} if kind is EventType.BOUNCED else {},
    )
    event._sender_domain = tenant_domain
    return event


def test_the_breaker_trips_on_the_crossing_bounce_and_the_window_rolls_with_a_fake_clock(stack: Stack) -> None:
    # GIVEN the default thresholds (4 % bounces) with a minimum volume of 100, over a one-hour window
    settings = ReputationSettings(enabled=True, min_volume=100, window_seconds=3600)
    clock = FakeClock()
    table = services().settings.table
    pauses = SendingPauses(services().messages._ddb, table)  # the stack's DynamoDB client (moto)
    breaker = ReputationBreaker(services().messages._ddb, table, settings, pauses, clock=clock)
    # WHEN tenant "a" has 100 deliveries, then hard bounces one at a time, and tenant "b" as many soft bounces
    assert breaker.observe("a", [_event(EventType.DELIVERED) for _ in range(100)]) == []
    trips_after = None
    for count in range(1, 10):
        clock.now += 1
        tripped = breaker.observe("a", [_event(EventType.BOUNCED)])
        breaker.observe("b", [_event(EventType.DELIVERED), _event(EventType.BOUNCED, hard=False)])
        if tripped:
            trips_after = count
            break
    # THEN it trips on the 5th hard bounce (5/105 = 4.8 % ≥ 4 %; 4/104 = 3.8 % was below): the reaction time is the
    # crossing event itself, for the tenant and for its sending domain
    assert trips_after == 5
    assert {e.details["scope"] for e in tripped} == {ALL_SCOPES, "shop.example"}
    assert all(e.type is EventType.SENDING_PAUSED for e in tripped)
    assert pauses.blocking("a", "shop.example") is not None
    assert pauses.blocking("a", "other.example") is not None  # the tenant-wide pause covers every domain
    # soft bounces do not count, and tenant b is not paused
    assert pauses.blocking("b", "shop.example") is None
    # a further bounce while open opens nothing again
    assert breaker.observe("a", [_event(EventType.BOUNCED)]) == []
    # WHEN an operator resumes, the breaker counts afresh: the next bounce alone does not trip it
    for scope in (ALL_SCOPES, "shop.example"):
        at = isoformat(datetime.fromtimestamp(clock.now, UTC))
        assert pauses.resume("a", scope, by="test", at=at) is not None
    clock.now += settings.bucket_seconds  # the resume's bucket is left behind
    assert breaker.observe("a", [_event(EventType.BOUNCED)]) == []
    assert pauses.blocking("a", "shop.example") is None
    # AND counts older than the window no longer weigh: a tenant with bad history an hour ago starts clean
    assert breaker.rates("a", ALL_SCOPES).bounces >= 6
    clock.now += settings.window_seconds + settings.bucket_seconds
    assert breaker.rates("a", ALL_SCOPES).sends == 0


@pytest.fixture
def breaker_on(monkeypatch: pytest.MonkeyPatch, events_stack: EventsStack) -> EventsStack:
    monkeypatch.setenv("POSTROOM_REPUTATION_BREAKER", "true")
    monkeypatch.setenv("POSTROOM_REPUTATION_MIN_VOLUME", "4")
    monkeypatch.setenv("POSTROOM_REPUTATION_HOLD_SECONDS", "0")
    reset_services()
    return events_stack


def _subscribe(events_stack: EventsStack, receiver: Receiver) -> dict[str, Any]:
    status, hook = events_stack.call(
        "POST", "/v1/webhooks", {"url": receiver.url, "event_types": ["sending_paused", "sending_resumed"]}
    )
    assert status == 201, hook
    return hook


def test_a_paused_tenant_is_refused_and_held_while_others_send_until_an_operator_resumes(
    breaker_on: EventsStack, sink: RecordingSink, receiver: Receiver
) -> None:
    events_stack = breaker_on
    hook = _subscribe(events_stack, receiver)
    other_tenant = create_key(ALL_KEY_SCOPES, tenant="other")
    # GIVEN a message SES took for four recipients, and another message queued behind it
    record = sent_via_ses(events_stack, ["a@example.org", "b@example.org", "c@example.org", "gone@example.org"])
    queued = events_stack.send({"from": "orders@smtp.example", "to": ["dave@example.org"], "subject": "s", "text": "t"})
    # WHEN SES reports three deliveries and one hard bounce (25 % ≥ 4 %, at the minimum volume of 4)
    delivery = {
        "timestamp": "2026-11-27T10:00:02.000Z",
        "processingTimeMillis": 900,
        "recipients": ["a@example.org", "b@example.org", "c@example.org"],
        "smtpResponse": "250 2.0.0 OK",
        "reportingMTA": "a1-2.smtp-out.amazonses.com",
    }
    publish(events_stack, ses_event("Delivery", record, delivery))
    publish(events_stack, ses_event("Bounce", record, bounce("gone@example.org")))
    events_stack.ses_events()
    # THEN the tenant is paused, with a sending_paused event and webhook naming the bounce's message
    status, state = events_stack.get("/v1/reputation")
    assert status == 200
    assert {p["scope"]: p["state"] for p in state["pauses"]} == {"*": "open", "shop.example": "open"}
    assert state["rates"]["bounces"] == 1
    assert state["rates"]["sends"] == 4
    events_stack.webhooks()
    verified = [Webhook(hook["secret"]).verify(r.body, r.headers) for r in receiver.requests]
    assert {(p["type"], p["data"]["details"]["scope"]) for p in verified} == {
        ("sending_paused", "*"),
        ("sending_paused", "shop.example"),
    }
    assert all(p["data"]["message_id"] == record["id"] for p in verified)
    # AND a new send is refused with 503 and the reason, and explain says the same
    body = {"from": "orders@smtp.example", "to": ["eve@example.org"], "subject": "s", "text": "t"}
    status, answer = events_stack.call("POST", "/v1/messages", body)
    assert status == 503
    assert answer["error"]["code"] == "sending_paused"
    assert "bounce rate 25.00%" in answer["error"]["message"]
    status, explained = events_stack.call("POST", "/v1/messages/explain", body)
    assert explained["breaker"]["state"] == "open"
    assert "sending_paused" in {r["code"] for r in explained["refusals"]}
    # AND the queued message is held: not attempted, not sent, still queued with its pointer back on the queue
    events_stack.drain("DeliveryQueue", "WorkerFunction", rounds=1)
    held = events_stack.record(queued)
    assert held["status"] == "queued"
    assert held["recipients"][0]["attempts"] == 0
    assert sink.messages == []
    # AND another tenant keeps sending
    status, other = events_stack.call("POST", "/v1/messages", body, key=other_tenant)
    assert status == 202, other
    # WHEN an operator resumes both scopes
    for scope in ("*", "shop.example"):
        status, resumed = events_stack.call("POST", "/v1/reputation/resume", {"scope": scope})
        assert status == 200, resumed
        assert resumed["state"] == "closed"
    assert events_stack.call("POST", "/v1/reputation/resume", {"scope": "*"})[0] == 409
    # THEN the held message and the other tenant's go out, new sends are accepted, and sending_resumed is sent
    events_stack.deliver()
    assert events_stack.record(queued)["status"] == "delivered"
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == ["dave@example.org", "eve@example.org"]
    assert events_stack.call("POST", "/v1/messages", body)[0] == 202
    events_stack.webhooks()
    kinds = [Webhook(hook["secret"]).verify(r.body, r.headers)["type"] for r in receiver.requests]
    assert kinds.count("sending_resumed") == 2


def test_with_the_breaker_off_nothing_changes(events_stack: EventsStack) -> None:
    # The default: no pause is read on a send, and the reputation state says it is off
    status, state = events_stack.get("/v1/reputation")
    assert status == 200
    assert state["enabled"] is False
    assert state["rates"] is None
    assert services().pauses is None
