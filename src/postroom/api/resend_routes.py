"""Resend-compatible ``/emails`` routes at the root of the host: a thin translation onto the same accept path.

``POST /emails``, ``POST /emails/batch``, ``GET /emails/{id}``, ``PATCH /emails/{id}`` (reschedule) and
``POST /emails/{id}/cancel``. The key arrives as ``Authorization: Bearer`` (api/gate). Bodies are translated by
:mod:`postroom.dialects.resend` and accepted by ``services().accept`` / ``accept_many``; ``Idempotency-Key`` is
Postroom's own (api/idempotent); cancel and reschedule are ``accept.scheduling``'s. Every error these routes raise,
PostroomError or ResendError, is rendered in Resend's shape by the resolver (``dialects.dispatch``).
"""

# No ``from __future__ import annotations``: Powertools evaluates the routes' hints on every request (message_routes).

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import ValidationError

from postroom.accept import scheduling
from postroom.accept.compose import MessageInput
from postroom.accept.intake import Accepted
from postroom.api import idempotent
from postroom.api.deps import require
from postroom.api.dialect_support import all_inactive, json_payload
from postroom.api.openapi_doc import errors
from postroom.api.responses import validation_failure
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError, PostroomError, ServiceUnavailableError, ValidationFailedError
from postroom.core.message_record import MessageRecord
from postroom.core.message_store import MessageNotFoundError
from postroom.dialects import resend
from postroom.wiring.services import services

# Powertools' Router.__init__ carries no annotations; the instance itself is typed.
router = Router()

BATCH_VALIDATION_HEADER = "x-batch-validation"


def _json(status: int, body: object) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def _message(row: Any, principal: Principal) -> MessageInput:
    """A Resend body as a MessageInput, screened: raises ResendError (or PostroomError) for what cannot be sent."""
    try:
        message = resend.translate(resend.ResendEmail.model_validate(row))
    except ValidationError as exc:
        raise validation_failure([dict(item) for item in exc.errors()]) from None
    suppressed = all_inactive(message, principal)
    if suppressed:
        raise resend.suppressed_recipients(suppressed)
    return message


SEND: dict[int, OpenAPIResponse] = {
    200: {"description": "Accepted: `{id}`, readable at GET /emails/{id} and /v1/messages/{id}"}
}


@router.post("/", summary="Resend: send an email", responses={**SEND, **errors(409, 503)})
def send_email(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]) -> Response[Any]:
    payload = json_payload(router.current_event.body)
    message = _message(payload, principal)

    def work() -> dict[str, Any]:
        accepted = services().accept(message, principal)
        return {"status": 200, "body": json.dumps({"id": accepted.id})}

    return idempotent.respond(router, "resend", principal, payload, work)


@router.post(
    "/batch",
    summary="Resend: send up to 100 emails",
    description="Strict by default (one invalid email refuses the whole batch, as Resend does); with "
    "`x-batch-validation: permissive` the valid ones are sent and `errors` lists the others by index.",
    responses={200: {"description": "`{data: [{id}], errors?: [{index, message}]}`"}, **errors(409, 503)},
)
def send_batch(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]) -> Response[Any]:
    payload = json_payload(router.current_event.body)
    if not isinstance(payload, list) or not payload or len(payload) > resend.MAX_BATCH:
        raise ValidationFailedError(f"send a list of 1 to {resend.MAX_BATCH} emails", field="body")
    mode = (router.current_event.headers.get(BATCH_VALIDATION_HEADER) or "strict").lower()
    if mode not in ("strict", "permissive"):
        raise ValidationFailedError("x-batch-validation is 'strict' or 'permissive'", field=BATCH_VALIDATION_HEADER)
    rows: list[MessageInput | PostroomError | resend.ResendError] = []
    for row in payload:
        try:
            rows.append(_message(row, principal))
        except (PostroomError, resend.ResendError) as error:
            if mode == "strict":
                raise
            rows.append(error)

    def work() -> dict[str, Any]:
        messages = [row for row in rows if isinstance(row, MessageInput)]
        outcomes = iter(services().accept_many(messages, principal))
        data: list[dict[str, str]] = []
        failures: list[dict[str, object]] = []
        for index, row in enumerate(rows):
            outcome = next(outcomes) if isinstance(row, MessageInput) else row
            if isinstance(outcome, Accepted):
                data.append({"id": outcome.id})
            else:
                failures.append({"index": index, "message": outcome.message})
        if failures and mode == "strict":
            # Only storage or queue failures reach here (validation ran above): the rest were accepted, and the error
            # names them so that a retry can leave them out (nothing accepted is dropped or silently sent twice).
            accepted = ", ".join(row["id"] for row in data) or "none"
            raise ServiceUnavailableError(
                f"{len(failures)} of the emails were not accepted ({failures[0]['message']}); accepted: {accepted}"
            )
        body: dict[str, object] = {"data": data}
        if mode == "permissive":
            body["errors"] = failures
        return {"status": 200, "body": json.dumps(body)}

    return idempotent.respond(router, "resend-batch", principal, payload, work)


def _own(email_id: str, principal: Principal) -> MessageRecord:
    try:
        record = services().messages.get(email_id)
    except (MessageNotFoundError, ValueError):
        raise NotFoundError(f"Email not found: {email_id}", field="id") from None
    if record.tenant != principal.tenant:  # another tenant's message does not exist, as far as this key knows
        raise NotFoundError(f"Email not found: {email_id}", field="id")
    return record


def _scheduler() -> scheduling.DeliveryScheduler:
    scheduler = services().scheduler
    if scheduler is None:
        raise ServiceUnavailableError("scheduled sending is not configured on this stack", field="scheduled_at")
    return scheduler


def _checked_id(email_id: str) -> str:
    # Postroom's ids; anything else cannot name one of its messages (and is never handed to the store).
    if not email_id.startswith("msg_") or len(email_id) != 30 or not email_id[4:].isalnum():
        raise NotFoundError(f"Email not found: {email_id}", field="id")
    return email_id


@router.get("/<email_id>", summary="Resend: retrieve an email")
def get_email(email_id: str, principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))]) -> Response[Any]:
    record = _own(_checked_id(email_id), principal)
    stored = services().messages.find_request(record.id)
    # A raw message (POST /v1/messages/raw, SMTP submission) keeps only its MIME: its envelope and subject answer.
    request = json.loads(stored) if stored is not None else resend.raw_request(record.public())
    return _json(200, resend.email_object(record.public(), request))


@router.patch("/<email_id>", summary="Resend: reschedule a scheduled email", responses=errors(409, 503))
def update_email(
    email_id: str, principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]
) -> Response[Any]:
    try:
        update = resend.ResendUpdate.model_validate(json_payload(router.current_event.body))
    except ValidationError as exc:
        raise validation_failure([dict(item) for item in exc.errors()]) from None
    if update.id is not None and update.id != email_id:
        raise ValidationFailedError("id: the body's id is not the one in the path", field="id")
    at = resend.parse_time("scheduled_at", update.scheduled_at)
    record = _own(_checked_id(email_id), principal)
    scheduling.reschedule(record, at, store=services().messages, scheduler=_scheduler())
    return _json(200, {"object": "email", "id": record.id})


@router.post("/<email_id>/cancel", summary="Resend: cancel a scheduled email", responses=errors(409, 503))
def cancel_email(
    email_id: str, principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]
) -> Response[Any]:
    # Python's SDK sends {}, Node's a JSON Content-Type and no body at all: both mean "cancel".
    body = router.current_event.body
    if body and json_payload(body) not in ({}, None):
        raise ValidationFailedError("cancel takes no fields", field="body")
    record = _own(_checked_id(email_id), principal)
    scheduling.cancel(record, store=services().messages, scheduler=_scheduler())
    return _json(200, {"object": "email", "id": record.id})
