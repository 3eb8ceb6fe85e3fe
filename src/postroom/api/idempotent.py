"""The ``Idempotency-Key`` header: the same key (per tenant) with the same body answers the first response again."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response, content_types

from postroom.core.errors import PostroomError, ServiceUnavailableError, ValidationFailedError
from postroom.core.idempotency import api_errors
from postroom.wiring.services import services

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import Router

    from postroom.core.auth import Principal

HEADER = "Idempotency-Key"
# Printable ASCII without spaces at the ends; UUIDs, ULIDs and "order-1001-confirmation" all fit.
_KEY = re.compile(r"^[!-~](?:[ -~]{0,253}[!-~])?$")


def _answer(result: dict[str, Any], replayed: bool) -> Response[str]:
    headers = dict(result.get("headers") or {})
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        status_code=int(result["status"]),
        content_type=content_types.APPLICATION_JSON,
        body=result["body"],
        headers=headers,
    )


def respond(
    router: Router, scope: str, principal: Principal, payload: Any, work: Callable[[], dict[str, Any]]
) -> Response[str]:
    """Run ``work`` (which returns ``{"status", "body", "headers"?}``) once per Idempotency-Key, or plainly without
    one. Errors that ``work`` raises are not remembered: a corrected retry with the same key is processed."""
    key = router.current_event.headers.get(HEADER)  # case-insensitive in Powertools v3
    if key is None:
        return _answer(work(), replayed=False)
    if not _KEY.match(key):
        raise ValidationFailedError(f"{HEADER} must be 1-255 printable ASCII characters", field=HEADER)
    once = services().once(scope)
    if once is None:
        raise ServiceUnavailableError(f"{HEADER} is not available: this stack has no idempotency table", field=HEADER)
    try:
        result, replayed = once.run(f"{principal.tenant}\n{key}", work, payload=payload, context=router.lambda_context)
    except PostroomError:
        raise
    except Exception as exc:
        mapped = api_errors(exc)
        if mapped is exc:
            raise
        raise mapped from exc
    return _answer(result, replayed)
