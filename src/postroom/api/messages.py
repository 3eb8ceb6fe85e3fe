"""``/v1/messages``: send a message, read its status."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from postroom.api import idempotent
from postroom.api.deps import require
from postroom.auth import Principal, Scope
from postroom.compose import MessageInput
from postroom.errors import NotFoundError
from postroom.sending import accept
from postroom.services import services
from postroom.store.messages import MessageNotFoundError

router = Router()


@router.post(
    "/",
    summary="Send a message",
    description="Validates, stores and queues the message (or schedules it, with send_at); answers 202 once it is "
    "durable. With an Idempotency-Key header, a retry with the same key and body answers the first response again.",
    responses={202: {"description": "Accepted: stored and queued for delivery"}},
)
def send_message(
    body: Annotated[MessageInput, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Response[dict[str, str]]:
    svc = services()

    def work() -> dict[str, object]:
        accepted = accept(
            body,
            principal,
            settings=svc.settings,
            store=svc.messages,
            queue=svc.queue,
            templates=svc.templates,
            scheduler=svc.scheduler,
        )
        return {
            "status": 202,
            "body": {"id": accepted.id, "status": accepted.status.value},
            "headers": {"Location": f"/v1/messages/{accepted.id}"},
        }

    return idempotent.respond(router, "send", principal, body.model_dump(mode="json", by_alias=True), work)


@router.get("/<message_id>", summary="A message's status and per-recipient results")
def get_message(
    message_id: Annotated[str, Path(pattern=r"^msg_[0-9a-z]{26}$", description="The id returned by the send call.")],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))],
) -> dict[str, object]:
    try:
        record = services().messages.get(message_id)
    except MessageNotFoundError:
        raise NotFoundError(f"no message {message_id}", field="id") from None
    if record.tenant != principal.tenant:  # another tenant's message does not exist, as far as this key knows
        raise NotFoundError(f"no message {message_id}", field="id")
    return record.public()
