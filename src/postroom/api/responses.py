"""Error bodies, one shape everywhere: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from postroom.core.errors import InvalidJsonError, PostroomError, ValidationFailedError

ErrorT = TypeVar("ErrorT", bound=Exception)
ErrorHandler = Callable[[ErrorT], Response[str]]


def exception_handler(
    resolver: ApiGatewayResolver, error_type: type[ErrorT]
) -> Callable[[ErrorHandler[ErrorT]], ErrorHandler[ErrorT]]:
    """Powertools' ``resolver.exception_handler(error_type)``, typed: its own decorator has no annotations, which
    under ``mypy --strict`` would turn every error handler it wraps into an untyped function."""
    register = resolver.exception_handler(error_type)

    def decorate(handler: ErrorHandler[ErrorT]) -> ErrorHandler[ErrorT]:
        register(handler)
        return handler

    return decorate


def error_response(error: PostroomError) -> Response[str]:
    return Response(
        status_code=int(error.status),
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(error.body()),
        headers={"WWW-Authenticate": 'Bearer realm="postroom"'} if error.status == 401 else None,
    )


def error_proxy_result(error: PostroomError) -> dict[str, Any]:
    """The same error as an API Gateway proxy result, for refusals made before the resolver runs."""
    headers = {"Content-Type": content_types.APPLICATION_JSON}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="postroom"'
    return {
        "statusCode": int(error.status),
        "headers": headers,
        "body": json.dumps(error.body()),
        "isBase64Encoded": False,
    }


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """Pydantic's ``("body", "to", 0, "email")`` → ``to[0].email``."""
    parts: list[str] = []
    for item in loc:
        if item == "body" and not parts:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts) or "body"


def validation_failure(errors: Sequence[Mapping[str, Any]]) -> PostroomError:
    """Pydantic errors (from the resolver or from a model validated in a route) → one structured error."""
    details = []
    for item in errors:
        if item.get("type") == "json_invalid":
            return InvalidJsonError("the request body is not valid JSON", field="body")
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        # A model-level error (postroom.core.untrusted's text rule) names the offending field in its context.
        loc = (*item.get("loc", ()), *(item.get("ctx") or {}).get("loc", ()))
        details.append({"field": field_path(loc), "message": message, "type": item.get("type")})
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    return ValidationFailedError(f"{first['field']}: {first['message']}", field=str(first["field"]), details=details)
