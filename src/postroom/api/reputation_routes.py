"""``/v1/reputation``: the tenant's reputation breaker — rolling rates, pauses — and the operator's resume."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import ConfigDict, Field

from postroom.api.deps import require
from postroom.api.openapi_doc import errors
from postroom.core.auth import Principal, Scope
from postroom.core.clock import now_iso
from postroom.core.errors import ConflictError
from postroom.core.sending_pause import ALL_SCOPES
from postroom.core.untrusted import InputModel
from postroom.events.event_model import Event, EventType, new_event_id
from postroom.events.recorder import Pending
from postroom.wiring.event_services import event_services

router = Router()


class ResumeRequest(InputModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = Field(
        default=ALL_SCOPES,
        max_length=253,
        pattern=r"^(\*|[a-z0-9.-]+)$",
        description="'*' (the tenant's pause) or the sending domain whose pause to lift.",
    )


@router.get("/", summary="The reputation breaker: settings, rolling rates and pauses")
def reputation(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))]) -> dict[str, object]:
    svc = event_services()
    settings = svc.core.settings.reputation
    pauses = svc.pauses.all(principal.tenant)
    breaker = svc.breaker
    resumed = {pause.scope: pause.resumed_at for pause in pauses}
    rates = None
    if breaker is not None:
        from postroom.core.clock import parse_iso

        scope_since = resumed.get(ALL_SCOPES)
        since = parse_iso(scope_since).timestamp() if scope_since else None
        rates = breaker.rates(principal.tenant, ALL_SCOPES, since=since).public()
    return {
        "enabled": settings.enabled,
        "thresholds": {
            "bounce_rate": settings.bounce_rate,
            "complaint_rate": settings.complaint_rate,
            "min_volume": settings.min_volume,
            "window_seconds": settings.window_seconds,
        },
        "rates": rates,
        "pauses": [pause.public() for pause in pauses],
    }


@router.post(
    "/resume",
    summary="Resume a paused tenant or sending domain",
    description="Lifts the pause of the scope; held mail goes out on its next look (within the hold time) and new "
    "sends are accepted again. The breaker counts afresh from now. A `sending_resumed` event (and webhook) follows.",
    responses=errors(409),
)
def resume(
    body: Annotated[ResumeRequest, Body()],
    principal: Annotated[Principal, Depends(require(Scope.KEYS_MANAGE))],
) -> dict[str, object]:
    svc = event_services()
    at = now_iso()
    pause = svc.pauses.resume(principal.tenant, body.scope, by=f"api key {principal.key_id}", at=at)
    if pause is None:
        raise ConflictError(f"nothing is paused for scope {body.scope!r}", field="scope")
    event = Event(
        id=new_event_id(),
        type=EventType.SENDING_RESUMED,
        message_id=pause.trigger_message_id or "",
        occurred_at=at,
        recorded_at=at,
        source="postroom",
        details={"scope": pause.scope, "paused_at": pause.opened_at, "reason": pause.reason},
    )
    svc.recorder.record(principal.tenant, [Pending(event, f"sending_resumed:{event.id}")])
    return pause.public()
