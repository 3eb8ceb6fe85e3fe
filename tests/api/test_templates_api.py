"""/v1/templates and sending with a template, through the real send API handler against moto."""

from __future__ import annotations

import json

import boto3

from postroom.core.auth import Scope
from tests.conftest import Stack, create_key

TEMPLATE = {
    "subject": "Welcome, {{ name }}",
    "html": "<html><head><style>h1 { color: #123456 }</style></head><body><h1>Hi {{ name }}</h1></body></html>",
    "description": "welcome mail",
}


def stored_request(stack: Stack, msg_id: str) -> dict:
    obj = boto3.client("s3").get_object(
        Bucket=stack.resources["BodiesBucket"]["Ref"], Key=f"messages/{msg_id}/request.json"
    )
    return json.loads(obj["Body"].read())


def test_template_crud_and_listing_with_builtins(stack: Stack) -> None:
    # WHEN a template is created, read, replaced, listed and deleted
    status, created = stack.request("PUT", "/v1/templates/welcome", TEMPLATE)
    assert status == 201, created
    assert created["builtin"] is False
    status, again = stack.request("PUT", "/v1/templates/welcome", {**TEMPLATE, "subject": "Hello {{ name }}"})
    assert status == 200
    assert again["created_at"] == created["created_at"]
    status, read = stack.request("GET", "/v1/templates/welcome")
    assert (status, read["subject"]) == (200, "Hello {{ name }}")
    status, listing = stack.request("GET", "/v1/templates")
    names = {t["name"]: t["builtin"] for t in listing["templates"]}
    # THEN the listing has the tenant's template and the built-ins
    assert names["welcome"] is False
    assert names["order_confirmation"] is True
    assert stack.request("DELETE", "/v1/templates/welcome")[0] == 204
    assert stack.request("GET", "/v1/templates/welcome")[0] == 404
    assert stack.request("DELETE", "/v1/templates/welcome")[0] == 404


def test_broken_template_is_refused_when_saved(stack: Stack) -> None:
    status, body = stack.request("PUT", "/v1/templates/broken", {**TEMPLATE, "html": "<p>{% if %}</p>"})
    assert status == 422
    assert body["error"]["code"] == "template_error"
    assert body["error"]["field"] == "html"


def test_render_endpoint_renders_without_sending(stack: Stack) -> None:
    stack.request("PUT", "/v1/templates/welcome", TEMPLATE)
    status, rendered = stack.request("POST", "/v1/templates/welcome/render", {"variables": {"name": "Ann"}})
    assert status == 200, rendered
    assert rendered["subject"] == "Welcome, Ann"
    assert '<h1 style="color: #123456;">Hi Ann</h1>' in rendered["html"]
    assert rendered["text"] == "Hi Ann\n"
    assert stack.queue_messages() == []
    status, error = stack.request("POST", "/v1/templates/welcome/render", {"variables": {}})
    assert status == 422
    assert "'name' is undefined" in error["error"]["message"]


def test_send_with_template_stores_the_rendered_message(stack: Stack) -> None:
    # GIVEN a stored template  WHEN a message names it with variables
    stack.request("PUT", "/v1/templates/welcome", TEMPLATE)
    status, body = stack.request(
        "POST",
        "/v1/messages",
        {"from": "orders@shop.example", "to": "ann@example.org", "template": "welcome", "variables": {"name": "Ann"}},
    )
    assert status == 202, body
    # THEN what is stored (and later delivered) is the rendered message, and the record names the template
    request = stored_request(stack, body["id"])
    assert request["subject"] == "Welcome, Ann"
    assert "Hi Ann" in request["html"]
    assert request["text"] == "Hi Ann\n"
    assert "template" not in request
    assert stack.request("GET", f"/v1/messages/{body['id']}")[1]["template"] == "welcome"


def test_template_send_errors(stack: Stack) -> None:
    base = {"from": "orders@shop.example", "to": "ann@example.org"}
    status, body = stack.request("POST", "/v1/messages", {**base, "template": "nope"})
    assert (status, body["error"]["field"]) == (404, "template")
    status, body = stack.request("POST", "/v1/messages", {**base, "template": "order_confirmation", "variables": {}})
    assert (status, body["error"]["code"]) == (422, "template_error")
    status, body = stack.request("POST", "/v1/messages", {**base, "template": "refund", "subject": "x"})
    assert status == 422
    assert "do not also send subject" in body["error"]["message"]
    assert stack.queue_messages() == []


def test_template_scopes(stack: Stack) -> None:
    sender_only = create_key(frozenset({Scope.MESSAGES_SEND}))
    assert stack.request("GET", "/v1/templates", key=sender_only)[0] == 403
    reader = create_key(frozenset({Scope.TEMPLATES_READ}))
    assert stack.request("GET", "/v1/templates", key=reader)[0] == 200
    status, body = stack.request("PUT", "/v1/templates/x", TEMPLATE, key=reader)
    assert status == 403
    assert "templates:write" in body["error"]["message"]


def test_templates_are_per_tenant(stack: Stack) -> None:
    stack.request("PUT", "/v1/templates/welcome", TEMPLATE)
    other = create_key(tenant="other")
    assert stack.request("GET", "/v1/templates/welcome", key=other)[0] == 404
