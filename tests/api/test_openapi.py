"""The served OpenAPI document (``GET /v1/openapi.json``) and Swagger UI (``GET /docs``): reachable without a key
through the routes ``template.yaml`` declares, valid OpenAPI 3.1, and complete about the statuses each operation
can answer. (That the API answers only declared statuses is checked by tests/badinput/test_api_schemathesis.py.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from postroom.api.openapi_doc import DIALECT_ERROR_MODELS
from postroom.dialects.dispatch import dialect_for
from postroom.local import template as tpl
from postroom.local.gateway import build_event
from tests.badinput.gateway import openapi_document
from tests.conftest import ROOT, Stack

BODY_METHODS = {"POST", "PUT", "PATCH"}
UNSCOPED = {("GET", "/v1/me")}  # any valid key may ask who it is: no scope, so never a 403
# A remote asset in the Swagger page: an absolute or protocol-relative URL in src/href, or an @import of one.
REMOTE_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|@import\s+url\(\s*["']?(?:https?:)?//""", re.I)


def _get(stack: Stack, path: str, method: str = "GET", headers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    event = build_event(
        method=method,
        path=path,
        resource=path,
        query="",
        headers=headers or [],
        body=b"",
        source_ip="127.0.0.1",
        path_parameters={},
        stage="api",
    )
    return stack.send_api.invoke(event)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_document_is_served_without_a_key_and_is_valid_openapi_3_1(stack: Stack) -> None:
    # GIVEN no API key  WHEN the document is fetched
    result = _get(stack, "/v1/openapi.json")
    # THEN 200 JSON, a valid OpenAPI 3.1 document, the one generated from the routes
    assert result["statusCode"] == 200, result["body"][:300]
    document = json.loads(result["body"])
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on an invalid document
    assert document == openapi_document()
    assert "/v1/messages" in document["paths"]
    assert "/v1/openapi.json" not in document["paths"]  # the description does not describe itself
    assert "/docs" not in document["paths"]


def test_swagger_ui_loads_without_a_key_and_references_no_remote_asset(stack: Stack) -> None:
    # GIVEN no API key  WHEN /docs is fetched
    result = _get(stack, "/docs")
    # THEN an HTML page with Swagger UI inlined (works offline, no CDN) and the document embedded
    assert result["statusCode"] == 200, result["body"][:300]
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    headers.update({k.lower(): v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()})
    assert headers["content-type"].startswith("text/html")
    page = result["body"]
    assert "SwaggerUIBundle" in page
    assert '"/v1/messages"' in page
    assert REMOTE_ASSET.search(page) is None, REMOTE_ASSET.search(page)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/openapi.json"),
        ("DELETE", "/docs"),
        ("GET", "/v1/openapi.json/"),
        ("GET", "/docs/x"),
        ("GET", "/v1/openapi.jsonx"),
        ("GET", "/v1/me"),
    ],
)
def test_only_a_get_of_exactly_the_document_paths_goes_without_a_key(stack: Stack, method: str, path: str) -> None:
    # GIVEN no API key  WHEN anything but GET /v1/openapi.json or GET /docs is requested
    result = _get(stack, path, method)
    # THEN the gate refuses it as it refuses every unkeyed request
    assert result["statusCode"] == 401, (method, path, result["body"][:300])
    assert json.loads(result["body"])["error"]["code"] == "unauthorized"


def test_template_routes_the_document_and_swagger_to_the_send_function() -> None:
    # GIVEN template.yaml's API routes
    routes = tpl.api_routes(tpl.load_template(ROOT / "template.yaml"))
    # THEN API Gateway sends GET /v1/openapi.json and GET /docs to the send API function
    for path in ("/v1/openapi.json", "/docs"):
        matched = tpl.match_route(routes, "GET", path)
        assert matched is not None, path
        assert matched[0].function_logical_id == "SendApiFunction"
    # AND every documented operation is routed by API Gateway (a documented route API Gateway does not know would
    # answer its own 403 "Missing Authentication Token")
    for method, path, _ in _operations(openapi_document()):
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        assert tpl.match_route(routes, method, concrete) is not None, (method, path)


def test_every_operation_declares_the_statuses_it_can_answer_with_the_error_schema() -> None:
    # GIVEN the generated document
    document = openapi_document()
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "pr_…",
        "description": document["components"]["securitySchemes"]["apiKey"]["description"],
    }
    assert document["security"] == [{"apiKey": []}]
    error_ref = "#/components/schemas/ErrorBody"
    for method, path, operation in _operations(document):
        declared = {int(status) for status in operation["responses"]}
        # THEN each declares what the gate, the scope check, the validator and API Gateway can answer ...
        expected = {401, 422, 429}
        if (method, path) not in UNSCOPED:
            expected.add(403)
        if "{" in path:
            expected.add(404)
        if method in BODY_METHODS:
            expected |= {400, 413, 415}
        assert expected <= declared, (method, path, sorted(expected - declared))
        assert any(200 <= status < 300 for status in declared), (method, path)
        # ... every Postroom error in the structured shape, with an example of it
        for status, response in operation["responses"].items():
            if int(status) < 400 or int(status) == 429:
                continue
            content = response["content"]["application/json"]
            dialect = dialect_for(path)
            # (a compatibility route's errors have its provider's shape, Postroom's error object beside it)
            ref = f"#/components/schemas/{DIALECT_ERROR_MODELS[dialect.name].__name__}" if dialect else error_ref
            assert content["schema"] == {"$ref": ref}, (method, path, status)
            (example,) = content["examples"].values()
            assert set(example["value"]["error"]) == {"code", "message", "field"}, (method, path, status)
    schema = document["components"]["schemas"]["ErrorBody"]
    assert schema["required"] == ["error"]
    for model in DIALECT_ERROR_MODELS.values():
        assert "error" in document["components"]["schemas"][model.__name__]["required"]


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/email", {"ErrorCode", "Message"}),
        ("/emails", {"statusCode", "name", "message"}),
        ("/v3/mail/send", {"errors"}),
    ],
)
def test_compatibility_routes_are_documented_with_their_providers_error_shape(path: str, fields: set[str]) -> None:
    # GIVEN the generated document  THEN each provider's send route is in it, its errors in the provider's shape
    operation = openapi_document()["paths"][path]["post"]
    for status in ("401", "403", "415"):
        (example,) = operation["responses"][status]["content"]["application/json"]["examples"].values()
        assert fields | {"error"} == set(example["value"]), (path, status)


def test_the_idempotent_sends_declare_409_and_503() -> None:
    # GIVEN the send operations, which take an Idempotency-Key and need the idempotency store
    paths = openapi_document()["paths"]
    for path in ("/v1/messages", "/v1/messages/raw", "/v1/messages/batch"):
        # THEN a reused key (409) and an unavailable store (503) are declared
        assert {"409", "503"} <= set(paths[path]["post"]["responses"]), path
