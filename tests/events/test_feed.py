"""``GET /v1/events``: every event exactly once, in order, with a cursor that stays valid across day partitions,
pages and new writes; the newest seconds are held back so a slow writer cannot be skipped."""

from __future__ import annotations

import time

import pytest

from postroom.core.clock import now_iso
from postroom.events.event_model import Event, EventType, new_event_id
from postroom.wiring.event_services import event_services
from postroom.wiring.services import reset_services
from tests.conftest import create_key
from tests.events.conftest import EventsStack

DAY_MS = 24 * 3600 * 1000


def record_at(ms: int, tenant: str = "default", kind: EventType = EventType.DELIVERED) -> str:
    """An event whose id carries the time ``ms`` (as if it had been recorded then)."""
    event = Event(
        id=new_event_id(ms),
        type=kind,
        message_id="msg_00000000000000000000000000",
        recipient="ann@example.org",
        occurred_at=now_iso(),
        recorded_at=now_iso(),
        source="smtp",
    )
    assert event_services().events.record(event, tenant=tenant, key=event.id).new
    return event.id


def read_all(events_stack: EventsStack, after: str | None = None, limit: int = 2) -> tuple[list[str], str]:
    seen: list[str] = []
    cursor = after
    while True:
        query = f"?limit={limit}" + (f"&after={cursor}" if cursor else "")
        status, page = events_stack.get(f"/v1/events{query}")
        assert status == 200, page
        seen += [event["id"] for event in page["data"]]
        cursor = page["next"]
        if not page["has_more"]:
            return seen, cursor


def test_feed_returns_every_event_once_across_days_and_pages(events_stack: EventsStack) -> None:
    # GIVEN events recorded over three days (three partitions), two of them in the same millisecond
    now = int(time.time() * 1000)
    ids = [record_at(now - 2 * DAY_MS), record_at(now - DAY_MS - 5), record_at(now - DAY_MS - 5), record_at(now - 1)]
    record_at(now, tenant="someone-else")
    # WHEN a client pages through with a small page size
    seen, cursor = read_all(events_stack)
    # THEN it saw each of its tenant's events exactly once, in id order
    assert seen == sorted(ids)
    # AND WHEN more events are recorded, the cursor it kept returns exactly those
    later = [record_at(int(time.time() * 1000)) for _ in range(3)]
    again, _ = read_all(events_stack, after=cursor, limit=10)
    assert again == sorted(later)
    # and reading from an older cursor again gives the same answer (the cursor is stable)
    assert read_all(events_stack, after=sorted(ids)[1], limit=3)[0] == sorted(ids)[2:] + sorted(later)


def test_real_deliveries_show_up_in_the_feed(events_stack: EventsStack) -> None:
    msg_id = events_stack.send({"from": "a@smtp.example", "to": ["ann@example.org"], "subject": "s", "text": "t"})
    events_stack.deliver()
    # another tenant sees neither the timeline nor the feed entry
    other = create_key(tenant="other")
    assert events_stack.get(f"/v1/messages/{msg_id}/events", key=other)[0] == 404
    assert events_stack.get("/v1/events", key=other)[1]["data"] == []
    status, page = events_stack.get("/v1/events")
    assert status == 200
    assert [(e["type"], e["message_id"], e["recipient"]) for e in page["data"]] == [
        ("delivered", msg_id, "ann@example.org")
    ]
    assert page["data"][0]["details"]["mx_host"]


def test_newest_events_are_held_back_without_being_skipped(
    events_stack: EventsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 30 s settle window, one event older than that and one just recorded
    monkeypatch.setenv("POSTROOM_EVENT_FEED_SETTLE_SECONDS", "30")
    reset_services()
    now = int(time.time() * 1000)
    old = record_at(now - 60_000)
    new = record_at(now)
    # WHEN the feed is read
    _, page = events_stack.get("/v1/events")
    # THEN only the settled one is handed out, and the cursor stays before the other
    assert [e["id"] for e in page["data"]] == [old]
    assert page["next"] < new
    # AND once the window has passed, the same cursor yields it
    monkeypatch.setenv("POSTROOM_EVENT_FEED_SETTLE_SECONDS", "0")
    reset_services()
    _, page = events_stack.get(f"/v1/events?after={page['next']}")
    assert [e["id"] for e in page["data"]] == [new]


def test_feed_needs_its_scope_and_a_valid_cursor(events_stack: EventsStack) -> None:
    from postroom.core.auth import Scope

    sender = create_key(frozenset({Scope.MESSAGES_SEND}))
    status, body = events_stack.get("/v1/events", key=sender)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = events_stack.get("/v1/events?after=not-a-cursor")
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "validation_error", "query.after")
    assert events_stack.get("/v1/events?limit=501")[0] == 422
