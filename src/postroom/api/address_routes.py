"""``/v1/addresses``: the inbound addresses (IMAP accounts), each with its system mailboxes (Inbox, Drafts, Sent,
Junk, Archive, Trash)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import ConfigDict, Field

from postroom.api.deps import require
from postroom.api.mail_access import check_address
from postroom.core.addresses import AddressError, normalise_address
from postroom.core.auth import Principal, Scope
from postroom.core.errors import ValidationFailedError
from postroom.core.untrusted import InputModel
from postroom.wiring.mailbox_wiring import mail_service
from postroom.wiring.services import services

router = Router()


class NewAddress(InputModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="An address at one of the stack's inbound domains, e.g. support@shop.example.")


@router.get("/", summary="Addresses this key can read")
def list_addresses(
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
) -> dict[str, object]:
    addresses = [a for a in mail_service().store.list_addresses(principal.tenant) if principal.may_access(a)]
    return {"addresses": [{"address": a, "mailboxes_url": f"/v1/mailboxes?address={a}"} for a in addresses]}


@router.post(
    "/",
    summary="Register an inbound address (creates its Inbox, Drafts, Sent, Junk, Archive and Trash)",
    responses={201: {"description": "Registered"}, 200: {"description": "Already registered"}},
)
def create_address(
    body: Annotated[NewAddress, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_ADMIN))],
) -> Response[dict[str, object]]:
    try:
        address = normalise_address(body.address).address.lower()
    except AddressError as error:
        raise ValidationFailedError(str(error), field="address") from None
    if address.rpartition("@")[2] not in services().settings.inbound_domains:
        raise ValidationFailedError(f"{address.rpartition('@')[2]} is not an inbound domain", field="address")
    if "+" in address.partition("@")[0]:
        raise ValidationFailedError("'+' starts a tag (plus-addressing); register the base address", field="address")
    service = mail_service()
    check_address(service, principal, address)
    created = service.store.create_address(address, principal.tenant)
    if not created:
        # Registered meanwhile, or before: answer with its mailboxes only if it is this tenant's.
        check_address(service, principal, address)
    return Response(
        status_code=201 if created else 200,
        content_type=content_types.APPLICATION_JSON,
        body={"address": address, "mailboxes": [m.public() for m in service.store.mailboxes(address)]},
    )
