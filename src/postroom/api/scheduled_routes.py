"""Changing a scheduled message: ``POST /v1/messages/{id}/cancel`` and ``PATCH /v1/messages/{id}`` (new send_at)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field, field_validator

from postroom.accept import scheduling
from postroom.api.deps import require
from postroom.api.openapi_doc import errors
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError, ServiceUnavailableError
from postroom.core.message_record import MessageRecord
from postroom.core.message_store import MessageNotFoundError
from postroom.core.untrusted import InputModel
from postroom.wiring.services import services

router = Router()

MessageId = Annotated[str, Path(pattern=r"^msg_[0-9a-z]{26}$", description="The id returned by the send call.")]


class Reschedule(InputModel):
    model_config = ConfigDict(extra="forbid")

    send_at: datetime = Field(description="The new time, ISO 8601 with a zone; at least 30 seconds ahead.")

    @field_validator("send_at")
    @classmethod
    def _zone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("send_at needs a time zone, e.g. 2030-01-31T09:00:00Z")
        return value


def _own(message_id: str, principal: Principal) -> MessageRecord:
    try:
        record = services().messages.get(message_id)
    except MessageNotFoundError:
        raise NotFoundError(f"no message {message_id}", field="id") from None
    if record.tenant != principal.tenant:
        raise NotFoundError(f"no message {message_id}", field="id")
    return record


def _scheduler() -> scheduling.DeliveryScheduler:
    scheduler = services().scheduler
    if scheduler is None:
        raise ServiceUnavailableError("scheduled sending is not configured on this stack")
    return scheduler


@router.post("/<message_id>/cancel", summary="Cancel a scheduled message", responses=errors(409, 503))
def cancel_message(
    message_id: MessageId, principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]
) -> dict[str, object]:
    record = scheduling.cancel(_own(message_id, principal), store=services().messages, scheduler=_scheduler())
    return record.public()


@router.patch("/<message_id>", summary="Reschedule a scheduled message", responses=errors(409, 503))
def reschedule_message(
    message_id: MessageId,
    body: Annotated[Reschedule, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> dict[str, object]:
    record = scheduling.reschedule(
        _own(message_id, principal), body.send_at, store=services().messages, scheduler=_scheduler()
    )
    return record.public()
