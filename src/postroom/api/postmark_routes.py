"""Postmark-compatible ``/email`` routes at the root of the host: a thin translation onto the same accept path.

``POST /email``, ``/email/batch``, ``/email/withTemplate`` and ``/email/batchWithTemplates`` (postmarker adds a
trailing slash to the last two). The key arrives as ``X-Postmark-Server-Token`` (api/gate). The body is translated
by :mod:`postroom.dialects.postmark` and accepted by ``services().accept`` / ``accept_many`` like any other message;
suppression is read (not re-implemented) so that a message to inactive recipients only is refused with Postmark's 406,
as Postmark does, while the worker's own suppression filter still skips listed recipients of a partly-listed message.
"""

# No ``from __future__ import annotations``: Powertools evaluates the routes' hints on every request (message_routes).

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from pydantic import ValidationError

from postroom.accept.compose import MessageInput
from postroom.accept.intake import Accepted
from postroom.api.deps import require
from postroom.api.dialect_support import inactive_recipients
from postroom.api.responses import validation_failure
from postroom.core.auth import Principal, Scope
from postroom.core.clock import utcnow
from postroom.core.errors import PostroomError, ValidationFailedError
from postroom.core.untrusted import loads
from postroom.dialects import postmark
from postroom.wiring.services import services

router = Router()

# Every path the Postmark routes serve (after the /email prefix), so a known path with another method is a 405.
PATHS = frozenset({"", "/batch", "/withTemplate", "/batchWithTemplates"})


def _json(status: int, body: object) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _payload() -> Any:
    body = router.current_event.body
    if not body:
        raise postmark.from_postroom(ValidationFailedError("the request has no JSON body", field="body"))
    try:
        return loads(body)
    except PostroomError as error:
        raise postmark.from_postroom(error) from None


def _message(row: Any, *, with_template: bool) -> tuple[postmark.PostmarkMessage, MessageInput]:
    try:
        original = postmark.PostmarkMessage.model_validate(row)
        return original, postmark.translate(original, with_template=with_template)
    except ValidationError as exc:
        raise postmark.from_postroom(validation_failure(list(exc.errors()))) from None
    except PostroomError as error:
        raise postmark.from_postroom(error) from None


def _screen(message: MessageInput, principal: Principal) -> str:
    """Postmark's answer text for an acceptable message; raises 406 when no recipient is active."""
    inactive = inactive_recipients(message, principal)
    if inactive and len(inactive) == len(message.envelope_recipients()):
        raise postmark.inactive_recipients(inactive)
    if inactive:
        return f"Message OK, but will not deliver to these inactive addresses: {', '.join(inactive)}"
    return "OK"


def _send_one(principal: Principal, *, with_template: bool) -> Response[Any]:
    original, message = _message(_payload(), with_template=with_template)
    text = _screen(message, principal)
    try:
        accepted = services().accept(message, principal)
    except PostroomError as error:
        raise postmark.from_postroom(error) from None
    return _json(200, postmark.accepted_answer(accepted.id, original.To, utcnow(), text))


def _send_many(rows: list[Any], principal: Principal, *, with_template: bool) -> Response[Any]:
    """Each row accepted or refused on its own, answered in request order (Postmark's batch answer: 200 and a list)."""
    if not isinstance(rows, list) or not rows or len(rows) > postmark.MAX_BATCH:
        raise postmark.from_postroom(
            ValidationFailedError(f"send a list of 1 to {postmark.MAX_BATCH} messages", field="body")
        )
    answers: list[dict[str, object] | None] = [None] * len(rows)
    accepted_rows: list[tuple[int, postmark.PostmarkMessage, MessageInput, str]] = []
    for index, row in enumerate(rows):
        try:
            original, message = _message(row, with_template=with_template)
            accepted_rows.append((index, original, message, _screen(message, principal)))
        except postmark.PostmarkError as error:
            answers[index] = error.body()
    outcomes = services().accept_many([message for _, _, message, _ in accepted_rows], principal)
    for (index, original, _, text), outcome in zip(accepted_rows, outcomes, strict=True):
        if isinstance(outcome, Accepted):
            answers[index] = postmark.accepted_answer(outcome.id, original.To, utcnow(), text)
        else:
            answers[index] = postmark.from_postroom(outcome).body()
    return _json(200, answers)


# postmarker sends the template routes with a trailing slash: APIGatewayRestResolver's routes match with or without.
@router.post("/", summary="Postmark: send a message")
def send_email(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]) -> Response[Any]:
    return _send_one(principal, with_template=False)


@router.post("/batch", summary="Postmark: send up to 500 messages")
def send_email_batch(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]) -> Response[Any]:
    return _send_many(_payload(), principal, with_template=False)


@router.post("/withTemplate", summary="Postmark: send a message from a stored template (TemplateAlias)")
def send_email_with_template(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]) -> Response[Any]:
    return _send_one(principal, with_template=True)


@router.post("/batchWithTemplates", summary="Postmark: send up to 500 templated messages")
def send_email_batch_with_templates(
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Response[Any]:
    payload = _payload()
    try:
        batch = postmark.BatchWithTemplates.model_validate(payload)
    except ValidationError as exc:
        raise postmark.from_postroom(validation_failure(list(exc.errors()))) from None
    return _send_many(batch.Messages, principal, with_template=True)
