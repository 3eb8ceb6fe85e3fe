"""The small API routes the console's pages call, through the real send API handler against moto: re-send a stored
message, preview an unsaved template (errors at their line), the sample order for the built-in order templates."""

from __future__ import annotations

import base64

from postroom.core.auth import Scope
from tests.conftest import Stack, create_key


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
