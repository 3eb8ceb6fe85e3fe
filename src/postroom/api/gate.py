"""Checks made before any request body is parsed: the caller's key, the body's size and its media type.

They run ahead of the resolver's own request validation, so an unauthenticated caller learns nothing from
validation errors and an oversize or non-JSON body is refused without being parsed.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from postroom.core.auth import bearer_token
from postroom.core.errors import (
    InvalidJsonError,
    InvalidKeyError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from postroom.dialects import postmark

if TYPE_CHECKING:
    from postroom.core.auth import Principal
    from postroom.wiring.services import Services

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Routes that also take a message as it is, not wrapped in JSON.
RAW_MESSAGE_PATHS = frozenset({"/v1/messages/raw"})
RAW_MESSAGE_TYPE = "message/rfc822"
# The API's own description, readable without a key: only GET, only these exact paths (no prefix match, so nothing
# under them and no other method skips the key).
PUBLIC_DOCUMENT_PATHS = frozenset({"/v1/openapi.json", "/docs"})


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def body_bytes(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def is_public_document(event: dict[str, Any]) -> bool:
    """A GET of the OpenAPI document or of Swagger UI: answered without a key."""
    return (event.get("httpMethod") or "").upper() == "GET" and event.get("path") in PUBLIC_DOCUMENT_PATHS


def authenticate(event: dict[str, Any], svc: Services) -> Principal:
    token = bearer_token(_header(event, "authorization"))
    field = "Authorization"
    if token is None and postmark.is_postmark_path(event.get("path")):
        # Postmark's SDKs present the key as their server token; only the Postmark routes read that header, so a
        # key in it means nothing anywhere else.
        token = _header(event, postmark.TOKEN_HEADER.lower()) or None
        field = postmark.TOKEN_HEADER
    if token is None:
        raise UnauthorizedError("send your API key as 'Authorization: Bearer <key>'", field="Authorization")
    principal = svc.keys.authenticate(token)
    if principal is None:
        raise InvalidKeyError("the API key is not valid or has been disabled", field=field)
    return principal


def screen(event: dict[str, Any], svc: Services) -> Principal:
    """Authenticate and check the body envelope; raises a PostroomError describing the first problem."""
    principal = authenticate(event, svc)
    if (event.get("httpMethod") or "").upper() in _BODY_METHODS:
        body = body_bytes(event)
        size = len(body)
        limit = svc.settings.max_request_bytes
        if size > limit:
            raise PayloadTooLargeError(
                f"the request body is {size} bytes; the limit is {limit} (Lambda's 6 MB synchronous payload cap)"
            )
        if not body:
            # An action route (``POST /v1/messages/{id}/cancel``) takes no body, and curl sends none and no
            # Content-Type; a route that needs a body still says so, as a 422 naming the missing body.
            return principal
        content_type = (_header(event, "content-type") or "").split(";")[0].strip().lower()
        if content_type == RAW_MESSAGE_TYPE and event.get("path") in RAW_MESSAGE_PATHS:
            return principal
        # Only application/json: the resolver parses nothing else as JSON (Powertools answered `application/x+json`,
        # admitted here as a +json type, with its own 415 body instead of Postroom's error).
        if content_type != "application/json":
            raise UnsupportedMediaTypeError(
                f"send the body as JSON with 'Content-Type: application/json' (got {content_type or 'none'!r})",
                field="Content-Type",
            )
        try:
            body.decode("utf-8")  # RFC 8259 §8.1: JSON between systems is UTF-8; the resolver would crash on others
        except UnicodeDecodeError as error:
            raise InvalidJsonError(
                f"the request body is not UTF-8 (invalid byte at offset {error.start})", field="body"
            ) from None
    return principal
