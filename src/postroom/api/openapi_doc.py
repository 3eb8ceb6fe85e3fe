"""The API's OpenAPI 3.1 document: the shared error schema, the security scheme and the statuses every operation can
answer, declared on the routes themselves so Powertools generates the document from them.

The statuses a route can answer follow from what stands in front of it and from its shape, so they are added in one
place (:func:`declare_statuses`) rather than repeated on forty decorators:

* every operation: 401 (the gate wants a key), 422 (Powertools validates path, query and body), 429 (API Gateway's
  stage throttling, which answers before the function runs);
* an operation that needs a scope: 403;
* an operation with a path parameter: 404 (an unknown or another tenant's id);
* an operation that takes a body (POST, PUT, PATCH): 400 (not JSON, not UTF-8), 413 (over the size cap), 415 (not
  ``application/json``).

What only some routes answer (409 on a reused Idempotency-Key, 503 when a store is unavailable, 410 for a stale
mailbox state) is declared on that route's decorator with :func:`errors`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from pydantic import BaseModel, Field

from postroom.api.deps import required_scopes

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aws_lambda_powertools.event_handler.api_gateway import Route
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

__all__ = [
    "DOCS_PATH",
    "DOCUMENT_PATH",
    "NO_CONTENT",
    "SECURITY",
    "SECURITY_SCHEMES",
    "ErrorBody",
    "declare_statuses",
    "errors",
]

DOCUMENT_PATH = "/v1/openapi.json"
DOCS_PATH = "/docs"

SECURITY_SCHEMES = {
    "apiKey": HTTPBearer(
        description="A Postroom API key (`postroom keys create`), sent as `Authorization: Bearer <key>`.",
        bearerFormat="pr_…",
    )
}
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]

# A 2xx without a body: ``content`` given (empty) so Powertools does not describe the return type as its body.
NO_CONTENT: OpenAPIResponse = {"description": "Done; no body", "content": {}}

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ErrorDetail(BaseModel):
    field: str = Field(description="Where the problem is, as a path into the request body (`to[0].email`).")
    message: str
    type: str | None = Field(default=None, description="Pydantic's error type, e.g. `missing`, `string_too_long`.")


class ErrorObject(BaseModel):
    code: str = Field(description="A stable, machine-readable code: `unauthorized`, `validation_error`, …")
    message: str = Field(description="What went wrong and what to do, for a person.")
    field: str | None = Field(description="The header, parameter or body field at fault, if one is.")
    details: list[ErrorDetail] | None = Field(default=None, description="Every validation problem, on a 422.")


class ErrorBody(BaseModel):
    """Every error Postroom itself answers: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorObject


class GatewayErrorBody(BaseModel):
    """An answer API Gateway gives before the function runs (throttling, a request over its size limit)."""

    message: str


# Why each status, and an example body, so the document reads without the code.
_ERRORS: dict[int, tuple[str, str, str | None, str]] = {
    400: ("invalid_json", "the request body is not valid JSON", "body", "The body is not JSON, or not UTF-8."),
    401: (
        "unauthorized",
        "send your API key as 'Authorization: Bearer <key>'",
        "Authorization",
        "No API key, or one that is not valid or has been disabled.",
    ),
    403: (
        "forbidden",
        "this API key lacks the 'messages:send' scope",
        "Authorization",
        "The API key lacks the scope this operation needs, or may not use this sender.",
    ),
    404: ("not_found", "no message msg_01j9zq4x7k3m5n8p2r6t0v1w3y", "id", "No such resource for this key's tenant."),
    409: (
        "conflict",
        "the Idempotency-Key was used with another request",
        None,
        "The resource is in a state that does not allow this, or an Idempotency-Key was reused for another request.",
    ),
    410: (
        "cannot_calculate_changes",
        "changes after state 12 are no longer kept; list the mailbox again",
        "since",
        "The client's state is too old: list again.",
    ),
    412: (
        "modified",
        "eml_01j9zq4x7k3m5n8p2r6t0v1w3y changed after modseq 12",
        "unchanged_since",
        "A conditional change found the message changed since the modseq given (IMAP UNCHANGEDSINCE).",
    ),
    413: (
        "payload_too_large",
        "the request body is 7340032 bytes; the limit is 6291456",
        None,
        "The body is over the size limit (Lambda's 6 MB synchronous payload cap).",
    ),
    415: (
        "unsupported_media_type",
        "send the body as JSON with 'Content-Type: application/json' (got 'text/plain')",
        "Content-Type",
        "The body is not sent as application/json.",
    ),
    422: (
        "validation_error",
        "to[0].email: value is not a valid email address",
        "to[0].email",
        "A parameter or the body does not match the schema; `details` lists every problem.",
    ),
    503: (
        "service_unavailable",
        "the delivery queue is unavailable; nothing was accepted",
        None,
        "A store or queue this operation needs is unavailable; nothing was changed. Retry later.",
    ),
}


def error_response(status: int) -> OpenAPIResponse:
    """The OpenAPI response for one error status: Postroom's error schema with an example body."""
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return {
            "description": "API Gateway's throttling (the stage's rate and burst limits); retry with backoff.",
            "content": {
                "application/json": {
                    "model": GatewayErrorBody,
                    "examples": {"throttled": {"value": {"message": "Too Many Requests"}}},
                }
            },
        }
    code, message, field, description = _ERRORS[status]
    return {
        "description": description,
        "content": {
            "application/json": {
                "model": ErrorBody,
                "examples": {code: {"value": {"error": {"code": code, "message": message, "field": field}}}},
            }
        },
    }


def errors(*statuses: int) -> dict[int, OpenAPIResponse]:
    """``responses=`` for a route decorator: the error statuses only that route answers."""
    return {status: error_response(status) for status in statuses}


def common_statuses(route: Route) -> set[int]:
    """The error statuses a route can answer because of what stands in front of it and of its shape."""
    statuses = {401, 422, 429}
    if required_scopes(route.func):
        statuses.add(403)
    if "{" in route.openapi_path:
        statuses.add(404)
    if route.method in _BODY_METHODS:
        statuses |= {400, 413, 415}
    return statuses


def declare_statuses(routes: Iterable[Route]) -> None:
    """Add the common error statuses to each route's declared responses, keeping what its decorator declared.

    Must run before a route's ``dependant`` is first built (Powertools reads the response models from ``responses``
    then): i.e. right after the routers are mounted.
    """
    for route in routes:
        declared: dict[int, OpenAPIResponse] = dict(route.responses or {})
        if not any(200 <= status < 300 for status in declared):
            # Declaring any response turns off Powertools' own success response: keep it, from the return type.
            declared[route.status_code] = {"description": HTTPStatus(route.status_code).phrase}
        for status in sorted(common_statuses(route)):
            declared.setdefault(status, error_response(status))
        route.responses = declared


def document_statuses(document: dict[str, Any]) -> dict[tuple[str, str], set[int]]:
    """``(METHOD, path) → declared statuses`` of a generated document (for tests and tools)."""
    return {
        (method.upper(), path): {int(status) for status in operation.get("responses", {})}
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
    }
