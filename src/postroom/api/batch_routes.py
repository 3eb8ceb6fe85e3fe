"""``POST /v1/messages/batch``: up to 500 messages in one request, each accepted or refused on its own."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, Field, ValidationError

from postroom.accept.compose import MessageInput
from postroom.accept.intake import Accepted
from postroom.api import idempotent
from postroom.api.deps import require
from postroom.api.openapi_doc import errors
from postroom.api.responses import validation_failure
from postroom.core.auth import Principal, Scope
from postroom.core.errors import PostroomError
from postroom.wiring.services import services

MAX_BATCH = 500

router = Router()


class BatchRequest(BaseModel):
    # Rows are validated one by one (below), so one bad row is that row's error instead of failing the request.
    messages: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_BATCH, description="Each row is a POST /v1/messages body (template allowed)."
    )


def _row(index: int, outcome: Accepted | PostroomError) -> dict[str, Any]:
    if isinstance(outcome, PostroomError):
        return {"index": index, "status": int(outcome.status), **outcome.body()}
    return {"index": index, "id": outcome.id, "status": outcome.status.value}


@router.post(
    "/batch",
    summary="Send up to 500 messages",
    description="Each row is accepted or refused on its own; the answer lists, in request order, an id or an error "
    "per row. An Idempotency-Key makes the whole batch safe to retry.",
    responses=errors(409, 503),
)
def send_batch(
    body: Annotated[BatchRequest, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Any:
    svc = services()

    def work() -> dict[str, Any]:
        rows: list[MessageInput | PostroomError] = []
        for raw in body.messages:
            try:
                rows.append(MessageInput.model_validate(raw))
            except ValidationError as exc:
                rows.append(validation_failure(list(exc.errors())))
        outcomes = svc.accept_many(rows, principal)
        results = [_row(index, outcome) for index, outcome in enumerate(outcomes)]
        accepted = sum(1 for outcome in outcomes if isinstance(outcome, Accepted))
        return {
            "status": 200,
            "body": {"accepted": accepted, "rejected": len(outcomes) - accepted, "results": results},
        }

    return idempotent.respond(router, "batch", principal, body.model_dump(mode="json"), work)
