"""``/v1/events``: the tenant's event feed; ``/v1/messages/{id}/events``: one message's timeline."""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from postroom.api.deps import require
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError
from postroom.core.message_store import MessageNotFoundError
from postroom.wiring.event_services import event_services

router = Router()
timeline_router = Router()

MAX_PAGE = 500
_CURSOR = r"^evt_[0-9a-hjkmnp-tv-z]{26}$"


@router.get(
    "/",
    summary="Events in the order they were recorded",
    description="Pass the previous answer's `next` as `after` to continue; the cursor is stable, so a client can "
    "catch up after a webhook outage. The newest few seconds are held back until no earlier write can still land.",
)
def list_events(
    principal: Annotated[Principal, Depends(require(Scope.EVENTS_READ))],
    after: Annotated[str | None, Query(pattern=_CURSOR, description="The `next` cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, object]:
    svc = event_services()
    until_ms = int((time.time() - svc.config.event_feed_settle_seconds) * 1000)
    page = svc.events.feed(principal.tenant, after=after, limit=limit, until_ms=until_ms)
    return {"data": [event.public() for event in page.events], "next": page.next_cursor, "has_more": page.has_more}


@timeline_router.get("/<message_id>/events", summary="A message's events, oldest first, with each recipient's")
def message_events(
    message_id: Annotated[str, Path(pattern=r"^msg_[0-9a-z]{26}$")],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))],
) -> dict[str, object]:
    svc = event_services()
    try:
        record = svc.core.messages.get(message_id)
    except MessageNotFoundError:
        raise NotFoundError(f"no message {message_id}", field="id") from None
    if record.tenant != principal.tenant:
        raise NotFoundError(f"no message {message_id}", field="id")
    events = svc.events.timeline(message_id)
    recipients = {
        r.address: {"status": r.status.value, "events": [e.public() for e in events if e.recipient == r.address]}
        for r in record.recipients
    }
    return {
        "message_id": message_id,
        "status": record.status.value,
        "data": [event.public() for event in events],
        "recipients": recipients,
    }
