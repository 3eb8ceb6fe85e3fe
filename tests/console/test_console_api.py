"""The small API routes the console's pages call, through the real send API handler against moto: re-send a stored
message, preview an unsaved template (errors at their line), the sample order for the built-in order templates."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from postroom.core.auth import Scope
from postroom.core.clock import now_iso
from postroom.events.event_model import Event, EventType, new_event_id
from postroom.events.event_store import stats_hour
from postroom.wiring.event_services import event_services
from postroom.wiring.services import reset_services
from tests.conftest import Stack, create_key


def recorded(kind: EventType, n: int) -> Event:
    now = now_iso()
    return Event(
        id=new_event_id(),
        type=kind,
        message_id=f"msg_{n:026d}",
        recipient="a@example.org",
        occurred_at=now,
        recorded_at=now,
        source="smtp",
    )


def test_resend_accepts_the_stored_request_again_as_a_new_message(stack: Stack) -> None:
    # GIVEN a sent message and a raw one
    status, first = stack.request(
        "POST",
        "/v1/messages",
        {
            "from": "orders@shop.example",
            "to": ["ann@example.org"],
            "subject": "Receipt",
            "text": "Paid.",
            "tags": ["receipt"],
        },
    )
    assert status == 202, first
    # WHEN it is re-sent
    status, again = stack.request("POST", f"/v1/messages/{first['id']}/resend")
    # THEN a new message with the same content and recipients is queued
    assert status == 202, again
    assert again["id"] != first["id"]
    assert again["resent_from"] == first["id"]
    _, copy = stack.request("GET", f"/v1/messages/{again['id']}")
    assert copy["subject"] == "Receipt"
    assert [r["address"] for r in copy["recipients"]] == ["ann@example.org"]
    assert copy["tags"] == ["receipt"]
    assert len(stack.queue_messages()) == 2
    # A key that may only read cannot re-send; another tenant's message does not exist for it.
    reader = create_key(frozenset({Scope.MESSAGES_READ}))
    status, refused = stack.request("POST", f"/v1/messages/{first['id']}/resend", key=reader)
    assert status == 403
    assert refused["error"]["field"] == "Authorization"
    other = create_key(tenant="other")
    status, missing = stack.request("POST", f"/v1/messages/{first['id']}/resend", key=other)
    assert status == 404
    assert missing["error"]["code"] == "not_found"


def test_resend_of_a_raw_submission_resubmits_its_mime(stack: Stack) -> None:
    raw = (
        b"From: orders@shop.example\r\nTo: bob@example.org\r\nSubject: Raw one\r\n"
        b"Message-ID: <r1@shop.example>\r\n\r\nBody.\r\n"
    )
    status, first = stack.request("POST", "/v1/messages/raw", {"raw": base64.b64encode(raw).decode()})
    assert status == 202, first
    status, again = stack.request("POST", f"/v1/messages/{first['id']}/resend")
    assert status == 202, again
    _, copy = stack.request("GET", f"/v1/messages/{again['id']}")
    assert copy["subject"] == "Raw one"
    assert [r["address"] for r in copy["recipients"]] == ["bob@example.org"]


def test_preview_renders_an_unsaved_template_and_points_at_the_failing_line(stack: Stack) -> None:
    body = {
        "subject": "Hi {{ name }}",
        "html": "<p>\n{{ greeting }}, {{ name }}</p>",
        "variables": {"name": "Ann", "greeting": "Hello"},
    }
    status, rendered = stack.request("POST", "/v1/templates/preview", body)
    assert status == 200, rendered
    assert rendered["subject"] == "Hi Ann"
    assert "Hello, Ann" in rendered["html"]
    assert "Hello, Ann" in rendered["text"]
    # a syntax error: 422 at the part and line
    status, error = stack.request("POST", "/v1/templates/preview", {**body, "html": "<p>ok</p>\n<p>{% if %}</p>"})
    assert status == 422, error
    assert error["error"]["field"] == "html"
    assert "line 2" in error["error"]["message"]
    # a missing variable found while rendering: its line too
    status, error = stack.request(
        "POST", "/v1/templates/preview", {**body, "html": "<p>a</p>\n<p>b</p>\n<p>{{ missing }}</p>"}
    )
    assert status == 422, error
    assert "html: line 3" in error["error"]["message"]
    assert "missing" in error["error"]["message"]
    # nothing was stored or sent
    assert stack.queue_messages() == []
    reader = create_key(frozenset({Scope.MESSAGES_READ}))
    assert stack.request("POST", "/v1/templates/preview", body, key=reader)[0] == 403


def test_order_templates_get_a_realistic_sample_order_that_renders(stack: Stack) -> None:
    for name in ("order_confirmation", "shipping_confirmation", "refund", "order_cancelled"):
        status, sample = stack.request("GET", f"/v1/templates/{name}/sample")
        assert status == 200, sample
        variables = sample["variables"]
        assert variables["order"]["name"] == "#1042"
        assert variables["customer"]["first_name"] == "Ann"
        status, rendered = stack.request("POST", f"/v1/templates/{name}/render", {"variables": variables})
        assert status == 200, (name, rendered)
        assert "#1042" in rendered["html"]
    _, confirmation = stack.request(
        "POST",
        "/v1/templates/order_confirmation/render",
        {"variables": stack.request("GET", "/v1/templates/order_confirmation/sample")[1]["variables"]},
    )
    assert "Linen shirt" in confirmation["html"]
    assert "£91.99" in confirmation["html"]
    # a tenant's own template previews with what the user types: no sample
    stack.request("PUT", "/v1/templates/welcome", {"subject": "Hi", "html": "<p>Hi</p>"})
    assert stack.request("GET", "/v1/templates/welcome/sample")[1] == {"variables": {}}
    assert stack.request("GET", "/v1/templates/nope/sample")[0] == 404


def test_stats_count_recorded_events_per_hour_and_rate_them_against_ses_marks(stack: Stack) -> None:
    store = event_services().events
    # GIVEN 30 deliveries, 2 bounces and a complaint recorded now, and one delivery recorded twice (a duplicate)
    kinds = [EventType.DELIVERED] * 30 + [EventType.BOUNCED] * 2 + [EventType.COMPLAINED]
    for n, kind in enumerate(kinds):
        store.record(recorded(kind, n), tenant="default", key=f"{kind}:{n}")
    assert not store.record(recorded(EventType.DELIVERED, 0), tenant="default", key="delivered:0").new
    # another tenant's events are not counted
    store.record(recorded(EventType.BOUNCED, 99), tenant="other", key="bounced:99")
    # WHEN the Overview's stats are read
    status, stats = stack.request("GET", "/v1/stats")
    # THEN the counts and rates are the recorded events', and the queue depth is read
    assert status == 200, stats
    assert stats["last_24h"] == {"delivered": 30, "bounced": 2, "complained": 1}
    assert stats["last_7d"] == stats["last_24h"]
    assert stats["rates"]["bounce"] == 2 / 32
    assert stats["rates"]["complaint"] == 1 / 30
    assert stats["rates"]["bounce_review"] == 0.05
    assert stats["queue"] == {"waiting": 0, "dead_letters": 0}
    # on AWS the Overview links the stack's dashboard (the template gives its URL)
    assert "cloudwatch/home" in stats["dashboard_url"]
    assert "#dashboards/dashboard/" in stats["dashboard_url"]
    # an hour eight days ago is outside the week
    assert stats_hour(datetime.now(UTC) - timedelta(days=8)) < min(
        stats_hour(datetime.now(UTC) - timedelta(hours=h)) for h in range(168)
    )
    events_only = create_key(frozenset({Scope.EVENTS_READ}))
    assert stack.request("GET", "/v1/stats", key=events_only)[0] == 403


def test_domains_list_the_stacks_sending_domains(stack: Stack) -> None:
    status, domains = stack.request("GET", "/v1/domains")
    assert status == 200, domains
    assert "shop.example" in [d["name"] for d in domains["data"]]
    reader = create_key(frozenset({Scope.MESSAGES_READ}))
    assert stack.request("GET", "/v1/domains", key=reader)[0] == 403


def test_replay_queues_one_delivery_of_a_recorded_event_to_the_subscription(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTROOM_WEBHOOK_ALLOW_PRIVATE", "true")
    reset_services()  # settings are read once per environment: read them again with the loopback allowance
    status, hook = stack.request("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/in"})
    assert status == 201, hook
    event = recorded(EventType.DELIVERED, 7)
    event_services().events.record(event, tenant="default", key="delivered:7")
    status, queued = stack.request("POST", f"/v1/webhooks/{hook['id']}/replay", {"event_id": event.id})
    assert status == 202, queued
    tasks = stack.queue_messages("WebhookQueue")
    assert [json.loads(t["Body"])["event"] for t in tasks] == [event.id]
    assert json.loads(tasks[0]["Body"])["subscription"] == hook["id"]
    # an event the tenant never had, and a disabled subscription, are refused
    missing = new_event_id()
    status, error = stack.request("POST", f"/v1/webhooks/{hook['id']}/replay", {"event_id": missing})
    assert status == 404, error
    stack.request("PATCH", f"/v1/webhooks/{hook['id']}", {"enabled": False})
    status, error = stack.request("POST", f"/v1/webhooks/{hook['id']}/replay", {"event_id": event.id})
    assert status == 409, error
