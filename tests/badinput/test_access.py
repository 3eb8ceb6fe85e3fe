"""Who may call what. Every route ``template.yaml`` declares refuses a missing key, an unknown key, a disabled key and
a key without the route's scope; a key of another tenant never sees a message; and only configured sending domains
may appear in From (no open relay), however the address is dressed up.

Routes are read from the template, so a route added later is covered by the generic refusals without editing this
file.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest

from postroom.core.auth import ALL_SCOPES, Scope
from postroom.local import template as tpl
from postroom.wiring.services import services
from tests.conftest import ROOT, Stack, create_key

MESSAGE = {"from": "Shop <orders@shop.example>", "to": ["ann@example.org"], "subject": "Hi", "text": "Hello"}
# The routes of the function the `stack` fixture serves (the send API); the mailbox API's key scoping is pinned in
# tests/inbound, the commerce hooks' HMAC gate in tests/commerce. GET /v1/me needs a valid key and no scope: it only
# tells a key about itself.
# The console's page is public by design (it holds no data and asks for the key: postroom.api.console_routes); its
# assets' route stays here, since any name but its few files is refused like every other path. The API's own
# description (the OpenAPI document and Swagger UI) is public too; tests/api/test_openapi.py pins that only a GET of
# exactly those two paths goes without a key.
PUBLIC = {("GET", "/console"), ("GET", "/v1/openapi.json"), ("GET", "/docs")}
ROUTES = [
    (r.method, r.path)
    for r in tpl.api_routes(tpl.load_template(ROOT / "template.yaml"))
    if r.function_logical_id == "SendApiFunction" and (r.method, r.path) not in PUBLIC
]
# The console's files need a key (any name but its few public ones) but no scope: they hold no data, and every call the
# console makes for data is checked against the key's scopes by the route it calls.
SCOPE_FREE = {("GET", "/v1/me"), ("GET", "/console/{proxy+}")}
SAMPLE_ID = "msg_" + "0" * 26
# The scope each known route needs; an unknown route is still checked against a key with no scope at all.
NEEDS = {("POST", "/v1/messages"): Scope.MESSAGES_SEND, ("GET", "/v1/messages/{id}"): Scope.MESSAGES_READ}


def concrete(path: str, value: str = SAMPLE_ID) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def call(stack: Stack, method: str, path: str, key: str | None) -> tuple[int, dict[str, Any]]:
    body = MESSAGE if method in {"POST", "PUT", "PATCH"} else None
    return stack.request(method, concrete(path), body, key=key)


# Resend's routes answer as Resend does, which its SDKs read to pick their exception: a key it does not know is 403
# invalid_api_key, a key without the scope 401 restricted_api_key (Postroom's own error object keeps its code).
RESEND_STATUS = {"invalid key": 403, "forbidden": 401}


def expected(path: str, status: int, why: str) -> int:
    return RESEND_STATUS.get(why, status) if path.startswith("/emails") else status


def assert_refused(status: int, body: dict[str, Any], expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body


def queued(stack: Stack) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources["DeliveryQueue"]["Ref"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_routes_come_from_the_template() -> None:
    assert set(NEEDS) <= set(ROUTES), ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    ("credential", "header"),
    [
        ("no Authorization header", None),
        ("an empty bearer token", "Bearer "),
        ("another scheme", "Basic dXNlcjpwYXNz"),
        ("an unknown key", "Bearer pr_" + "A" * 43),
        ("a key with a line break", "Bearer pr_abc\r\nX-Injected: 1"),
    ],
)
def test_every_route_refuses_a_caller_without_a_valid_key(
    stack: Stack, method: str, path: str, credential: str, header: str | None
) -> None:
    # GIVEN a request with <credential>  WHEN it reaches any route
    body = MESSAGE if method == "POST" else None
    headers = {"Authorization": header} if header is not None else {}
    status, answer = stack.request(method, concrete(path), body, key=None, headers=headers)
    # THEN 401, structured, and nothing was queued
    presented = header is not None and header.startswith("Bearer ") and header.strip() != "Bearer"
    assert_refused(status, answer, expected(path, 401, "invalid key" if presented else "missing"), "unauthorized")
    assert queued(stack) == 0


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_disabled_key(stack: Stack, method: str, path: str) -> None:
    # GIVEN a key that worked, then was disabled
    key = create_key(ALL_SCOPES)
    assert call(stack, "POST", "/v1/messages", key)[0] == 202
    disabled = services().keys.disable(services().keys.authenticate(key).key_id)
    assert disabled == 1
    # WHEN it is used on any route  THEN 401
    status, answer = call(stack, method, path, key)
    assert_refused(status, answer, expected(path, 401, "invalid key"), "unauthorized")


@pytest.mark.parametrize(("method", "path"), [route for route in ROUTES if route not in SCOPE_FREE])
def test_every_route_refuses_a_key_without_its_scope(stack: Stack, method: str, path: str) -> None:
    # GIVEN a key with no scope at all, and one with every scope but the route's
    keys = [create_key(frozenset())]
    if (method, path) in NEEDS:
        keys.append(create_key(ALL_SCOPES - {NEEDS[(method, path)]}))
    for key in keys:
        # WHEN it calls the route  THEN 403 forbidden, and nothing was queued
        status, answer = call(stack, method, path, key)
        assert_refused(status, answer, expected(path, 403, "forbidden"), "forbidden")
    assert queued(stack) == 0


def test_a_key_of_another_tenant_never_sees_a_message(stack: Stack) -> None:
    # GIVEN a message sent by tenant "default"
    status, sent = stack.request("POST", "/v1/messages", MESSAGE)
    assert status == 202
    # WHEN a key of tenant "other", with every scope, reads it
    other = create_key(ALL_SCOPES, tenant="other")
    status, answer = stack.request("GET", f"/v1/messages/{sent['id']}", key=other)
    # THEN it does not exist for that key (404, the same as an id never issued: nothing leaks)
    assert_refused(status, answer, 404, "not_found")
    assert stack.request("GET", f"/v1/messages/{SAMPLE_ID}", key=other)[1]["error"]["message"].startswith("no message")
    # ... while its own tenant reads it
    assert stack.request("GET", f"/v1/messages/{sent['id']}")[0] == 200


@pytest.mark.parametrize(
    "sender",
    [
        "someone@gmail.example",  # not configured
        "orders@shop.example.evil.example",  # the configured domain as a prefix
        "orders@evil-shop.example",
        "orders@sub.shop.example",  # a subdomain is another domain
        "orders@shopexample",
        "Shop <orders@shop.example> <x@evil.example>",  # two addresses in one
        "orders@shop.example@evil.example",
        '"orders@shop.example" <x@evil.example>',  # the configured address as a display name
        {"email": "x@evil.example", "name": "orders@shop.example"},
        "orders@xn--shp-sna.example",  # IDN lookalike (shöp.example)
        "orders@shöp.example",
        "orders@[127.0.0.1]",  # address literal
        "orders@shop.example.",  # trailing dot: refused or normalised, never a way around the list
    ],
)
def test_a_sender_domain_that_is_not_configured_is_refused_no_open_relay(stack: Stack, sender: Any) -> None:
    # GIVEN a From that is not at a configured sending domain  WHEN it is sent
    status, answer = stack.request("POST", "/v1/messages", {**MESSAGE, "from": sender})
    # THEN it is refused (403 sender_not_allowed, or 422 when it is no address at all) and nothing is queued
    assert status in {403, 422}, answer
    assert answer["error"]["code"] in {"sender_not_allowed", "validation_error"}, answer
    assert queued(stack) == 0


@pytest.mark.parametrize("sender", ["orders@SHOP.EXAMPLE", "Orders <ORDERS@Shop.Example>"])
def test_a_configured_domain_in_other_case_is_accepted(stack: Stack, sender: str) -> None:
    # GIVEN the configured domain written in another case  WHEN it is sent  THEN it is accepted (domains are caseless)
    status, answer = stack.request("POST", "/v1/messages", {**MESSAGE, "from": sender})
    assert status == 202, answer
