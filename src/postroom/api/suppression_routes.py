"""``/v1/suppressions``: list, add and remove suppressed addresses (hard bounces, complaints and unsubscribes are
added automatically)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import ConfigDict, Field, field_validator, model_validator

from postroom.api.deps import require
from postroom.api.openapi_doc import NO_CONTENT
from postroom.core.addresses import AddressError, normalise_address
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError, ValidationFailedError
from postroom.core.untrusted import InputModel
from postroom.suppression.suppression_store import Suppression, SuppressionReason
from postroom.wiring.event_services import event_services

router = Router()

_DOMAIN = r"^([A-Za-z0-9-]+\.)+[A-Za-z0-9-]+$"
_TOPIC = r"^[A-Za-z0-9_.-]{1,64}$"


def _address(value: str) -> str:
    try:
        return normalise_address(value).address.lower()
    except AddressError as exc:
        raise ValueError(str(exc)) from None


class SuppressionRequest(InputModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="The address not to mail.")
    domain: str | None = Field(default=None, pattern=_DOMAIN, description="Only for this sending domain.")
    topic: str | None = Field(default=None, pattern=_TOPIC, description="With domain: only this topic's mail.")
    details: str | None = Field(default=None, max_length=1000, description="Why, in your words.")

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return _address(value)

    @model_validator(mode="after")
    def _topic_needs_domain(self) -> SuppressionRequest:
        if self.topic and not self.domain:
            raise ValueError("a topic applies within a sending domain: give the domain too")
        return self


def _check_domain(domain: str | None) -> None:
    if domain and domain.lower() not in event_services().core.settings.sending_domains:
        raise ValidationFailedError(f"{domain!r} is not a sending domain of this stack", field="domain")


@router.get("/", summary="Suppressed addresses, by scope and address")
def list_suppressions(
    principal: Annotated[Principal, Depends(require(Scope.SUPPRESSIONS_READ))],
    domain: Annotated[
        str | None, Query(description="Only this sending domain's entries; * for all-domain ones.")
    ] = None,
    address: Annotated[str | None, Query(description="Only this address's entries.")] = None,
    after: Annotated[str | None, Query(max_length=2000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, object]:
    try:
        entries, cursor = event_services().suppressions.list(
            principal.tenant, domain=domain, address=_address(address) if address else None, after=after, limit=limit
        )
    except ValueError as exc:
        raise ValidationFailedError(str(exc), field="address" if address else "after") from None
    return {"data": [entry.model_dump(mode="json") for entry in entries], "next": cursor}


@router.post(
    "/",
    summary="Suppress an address",
    responses={201: {"description": "Added"}, 200: {"description": "Already suppressed"}},
)
def add_suppression(
    body: Annotated[SuppressionRequest, Body()],
    principal: Annotated[Principal, Depends(require(Scope.SUPPRESSIONS_WRITE))],
) -> Response[dict[str, object]]:
    _check_domain(body.domain)
    entry = Suppression(
        address=body.address,
        domain=body.domain.lower() if body.domain else None,
        topic=body.topic,
        reason=SuppressionReason.MANUAL,
        details=body.details,
    )
    created = event_services().suppressions.add(principal.tenant, entry)
    return Response(
        status_code=201 if created else 200,
        content_type=content_types.APPLICATION_JSON,
        body={**entry.model_dump(mode="json"), "created": created},
    )


@router.delete("/", summary="Remove an address from the list (for one scope)", responses={204: NO_CONTENT})
def remove_suppression(
    principal: Annotated[Principal, Depends(require(Scope.SUPPRESSIONS_WRITE))],
    address: Annotated[str, Query(description="The address to mail again.")],
    domain: Annotated[str | None, Query(pattern=_DOMAIN, description="The entry's sending domain, if any.")] = None,
    topic: Annotated[str | None, Query(pattern=_TOPIC)] = None,
) -> Response[str]:
    try:
        normalised = _address(address)
    except ValueError as exc:
        raise ValidationFailedError(str(exc), field="address") from None
    if not event_services().suppressions.remove(principal.tenant, normalised, domain=domain, topic=topic):
        raise NotFoundError(f"{normalised} is not suppressed for that scope", field="address")
    return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")
