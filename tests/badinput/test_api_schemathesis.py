"""Schemathesis against Postroom's own OpenAPI document (``app.get_openapi_json_schema()``), in process: generated
requests, valid and invalid, go through an API-Gateway-style WSGI adapter to the real send API handler over moto.

Every answer must be below 500, every error must be Postroom's structured ``{"error": {"code", "message",
"field"}}``, and every status Postroom answers must be one the operation declares in the document, with a declared Content-Type and a
body that matches the declared schema; a caller without a key gets 401 for every generated request, whatever the request looks like.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from postroom.local import template as tpl
from tests.badinput.gateway import GATEWAY_ERROR_HEADER, OPENAPI_PATH, WsgiGateway
from tests.conftest import ROOT, Stack

# SCHEMA_EXAMPLES lowers the bound for a quick local pass; CI runs the default.
EXAMPLES = int(
    os.environ.get("SCHEMA_EXAMPLES", "60")
)  # per operation and auth mode: bounded, and derandomized so a failure reproduces

# The gateway and the schema exist from import (schemathesis parametrizes at collection); each test plugs the
# handlers of its own emulated stack into the gateway.
GATEWAY = WsgiGateway(tpl.load_template(ROOT / "template.yaml"), {})
schema = schemathesis.openapi.from_wsgi(OPENAPI_PATH, GATEWAY)


@pytest.fixture
def api(stack: Stack) -> Iterator[Stack]:
    GATEWAY.invokers["SendApiFunction"] = stack.send_api.invoke
    # The mailbox API function runs the same resolver (postroom.api.resolver) with its own routes in template.yaml.
    GATEWAY.invokers["MailboxApiFunction"] = stack.send_api.invoke
    yield stack
    GATEWAY.invokers.clear()


def _error_of(response: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


@schemathesis.check
def structured_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx Postroom gives is {"error": {"code": str, "message": str, "field": str|null}}."""
    if response.status_code < 400 or GATEWAY_ERROR_HEADER.lower() in {k.lower() for k in response.headers}:
        return None
    error = _error_of(response)
    assert error is not None, f"{response.status_code} without an error object: {response.content[:300]!r}"
    assert isinstance(error.get("code"), str), error
    assert error["code"], error
    assert isinstance(error.get("message"), str), error
    assert error["message"], error
    assert "field" in error, error
    assert error["field"] is None or isinstance(error["field"], str), error
    return None


@schemathesis.check
def declared_statuses(ctx: Any, response: Any, case: Any) -> bool | None:
    """Postroom answers only statuses the operation's document declares (API Gateway's own answers aside)."""
    if GATEWAY_ERROR_HEADER.lower() in {k.lower() for k in response.headers}:
        return None
    return status_code_conformance(ctx, response, case)


@schemathesis.check
def declared_content_types(ctx: Any, response: Any, case: Any) -> bool | None:
    """Postroom's Content-Type is one the operation declares for that status (API Gateway's own answers aside)."""
    if GATEWAY_ERROR_HEADER.lower() in {k.lower() for k in response.headers}:
        return None
    return content_type_conformance(ctx, response, case)


@schemathesis.check
def declared_response_schemas(ctx: Any, response: Any, case: Any) -> bool | None:
    """Postroom's body matches the schema the operation declares for that status (API Gateway's own answers aside)."""
    if GATEWAY_ERROR_HEADER.lower() in {k.lower() for k in response.headers}:
        return None
    return response_schema_conformance(ctx, response, case)


CHECKS = [not_a_server_error, structured_errors, declared_statuses, declared_content_types, declared_response_schemas]

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@schema.parametrize()
@SETTINGS
def test_generated_requests_never_get_a_5xx_and_errors_are_structured(case: Any, api: Stack) -> None:
    # GIVEN a generated request (valid or not) with a valid key  WHEN it is sent
    response = case.call(headers={"Authorization": f"Bearer {api.api_key}"})
    # THEN no 5xx, and any error is structured
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@SETTINGS
def test_generated_requests_without_a_key_are_401(case: Any, api: Stack) -> None:
    # GIVEN a generated request without a key  WHEN it is sent
    response = case.call(headers={"Authorization": ""})
    # THEN 401, structured, whatever the body or path held
    case.validate_response(response, checks=CHECKS)
    if GATEWAY_ERROR_HEADER.lower() not in {k.lower() for k in response.headers}:
        assert response.status_code == 401, response.content[:300]
        assert _error_of(response)["code"] == "unauthorized"
