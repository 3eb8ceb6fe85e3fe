"""``/v1/messages``: send a message, read its status."""

# No ``from __future__ import annotations`` here: Powertools resolves the route's type hints on every request (for
# ``Depends``), and string annotations would be compiled and evaluated each time (≈ 15 % of the accept path's CPU).
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from postroom.api.deps import require
from postroom.auth import Principal, Scope
from postroom.errors import NotFoundError
from postroom.models import SendRequest
from postroom.sending import accept
from postroom.services import services
from postroom.store.messages import MessageNotFoundError

router = Router()


@router.post(
    "/",
    summary="Send a message",
    description="Validates, stores and queues the message; answers 202 once it is durable.",
    responses={202: {"description": "Accepted: stored and queued for delivery"}},
)
def send_message(
    body: Annotated[SendRequest, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Response[dict[str, str]]:
    svc = services()
    accepted = accept(body, principal, settings=svc.settings, store=svc.messages, queue=svc.queue)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body={"id": accepted.id, "status": accepted.status.value},
        headers={"Location": f"/v1/messages/{accepted.id}"},
    )


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
