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

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, SecurityScheme
from pydantic import BaseModel, Field

from postroom.api.deps import required_scopes
from postroom.core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidJsonError,
    InvalidKeyError,
    NotFoundError,
    PayloadTooLargeError,
    PostroomError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from postroom.dialects.dispatch import Dialect, dialect_for

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

SECURITY_SCHEMES: dict[str, SecurityScheme] = {
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


class PostmarkErrorBody(BaseModel):
    """Every error of the Postmark routes: Postmark's ``ErrorCode`` and ``Message`` (postmarker needs ErrorCode on
    every error), Postroom's ``error`` beside them."""

    ErrorCode: int = Field(description="Postmark's error code: 10 bad token, 300 invalid request, 406 inactive, …")
    Message: str
    error: ErrorObject


class ResendErrorBody(BaseModel):
    """Every error of the Resend routes: Resend's ``{statusCode, name, message}``, Postroom's ``error`` beside it."""

    statusCode: int  # noqa: N815 - Resend's field name
    name: str = Field(description="Resend's error name: missing_api_key, invalid_api_key, validation_error, …")
    message: str
    error: ErrorObject


class SendGridErrorItem(BaseModel):
    message: str
    field: str | None = Field(description="SendGrid's path to the field, e.g. `personalizations.0.to.0.email`.")
    help: str | None


class SendGridErrorBody(BaseModel):
    """Every error of the SendGrid route: SendGrid's ``errors`` list, Postroom's ``error`` beside it."""

    errors: list[SendGridErrorItem]
    error: ErrorObject


# The provider's error model on each dialect's routes; their SDKs parse nothing else.
DIALECT_ERROR_MODELS: dict[str, type[BaseModel]] = {
    "Postmark": PostmarkErrorBody,
    "Resend": ResendErrorBody,
    "SendGrid": SendGridErrorBody,
}
# The Postroom errors that may stand behind each status, to render a dialect's example through the dialect's own
# mapping: the first that the dialect answers with that status is the example (Resend answers an unknown key 403).
_EXAMPLE_ERRORS: dict[int, tuple[type[PostroomError], ...]] = {
    400: (InvalidJsonError,),
    401: (UnauthorizedError, InvalidKeyError, ForbiddenError),
    403: (ForbiddenError, InvalidKeyError),
    404: (NotFoundError,),
    409: (ConflictError,),
    413: (PayloadTooLargeError,),
    415: (UnsupportedMediaTypeError,),
    422: (ValidationFailedError,),
    503: (ServiceUnavailableError,),
}


_EXAMPLE_TEXT: dict[type[PostroomError], tuple[str, str | None]] = {
    UnauthorizedError: ("send your API key as 'Authorization: Bearer <key>'", "Authorization"),
    InvalidKeyError: ("the API key is not valid or has been disabled", "Authorization"),
    ForbiddenError: ("this API key lacks the 'messages:send' scope", "Authorization"),
}


def _dialect_example(status: int, dialect: Dialect, message: str, field: str | None) -> dict[str, object]:
    refusals = []
    for kind in _EXAMPLE_ERRORS[status]:
        text, where = _EXAMPLE_TEXT.get(kind, (message, field))
        refusals.append(dialect.from_postroom(kind(text, field=where)))
    return next((r for r in refusals if r.status == status), refusals[0]).body()


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


def error_response(status: int, dialect: Dialect | None = None) -> OpenAPIResponse:
    """The OpenAPI response for one error status: Postroom's error schema with an example body, or on a dialect's
    route that provider's error schema with the body the dialect renders for it."""
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
    if dialect is not None and status in _EXAMPLE_ERRORS:
        return {
            "description": f"{description} In {dialect.name}'s error shape.",
            "content": {
                "application/json": {
                    "model": DIALECT_ERROR_MODELS[dialect.name],
                    "examples": {code: {"value": _dialect_example(status, dialect, message, field)}},
                }
            },
        }
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


def _in_dialect(response: OpenAPIResponse, dialect: Dialect, status: int) -> OpenAPIResponse:
    """A declared error response of a dialect's route, in the dialect's shape (a route's own ``errors(...)``)."""
    content = response.get("content") or {}
    model = (content.get("application/json") or {}).get("model")
    return error_response(status, dialect) if model is ErrorBody else response


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
        dialect = dialect_for(route.openapi_path)
        if dialect is not None:
            declared = {
                status: _in_dialect(response, dialect, status) if status >= 400 else response
                for status, response in declared.items()
            }
        for status in sorted(common_statuses(route)):
            declared.setdefault(status, error_response(status, dialect))
        route.responses = declared


def document_statuses(document: dict[str, Any]) -> dict[tuple[str, str], set[int]]:
    """``(METHOD, path) → declared statuses`` of a generated document (for tests and tools)."""
    return {
        (method.upper(), path): {int(status) for status in operation.get("responses", {})}
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
    }
