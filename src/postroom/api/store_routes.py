"""``/v1/stores``: the tenant's shops whose order webhooks Postroom receives (what ``postroom stores add`` did with the
operator's AWS credentials), over HTTP.

A store belongs to the tenant of the key that created it; another tenant's store answers like a missing one, and its
id cannot be taken over. The webhook secret is only ever written (to Secrets Manager): no answer carries it. The
answer to a create names the URL to paste into the shop's webhook settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field

from postroom.api.deps import require
from postroom.core.addresses import AddressError, parse_mailbox
from postroom.core.auth import Principal, Scope
from postroom.core.errors import ConflictError, ForbiddenError, NotFoundError, ValidationFailedError
from postroom.core.untrusted import InputModel

if TYPE_CHECKING:
    from postroom.commerce.stores import Store, StoreRegistry

router = Router()

# postroom.commerce.stores.STORE_ID, spelled out: the send API's cold start does not import the commerce package
# (wiring/commerce_services), so these routes import it only when called.
_STORE_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
# What a shop's admin pastes is a URL on the public API; the routes themselves are api/commerce_hook_routes.
_HOOK_PATH = "/v1/hooks/{platform}/{store}"


class StoreCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_STORE_ID, description="The {store} in the webhook URL: lower-case letters, digits, '-'.")
    platform: Literal["shopify", "woocommerce"]
    secret: str = Field(
        min_length=8, max_length=512, description="The shop's webhook signing secret; written, never shown again."
    )
    sender: str = Field(max_length=320, description="From of the order mails, e.g. 'Shop <orders@shop.example>'.")
    shop_name: str = Field(default="", max_length=200, description="The shop's name in the mails (default: the id).")
    support_email: str = Field(default="", max_length=320, description="Shown in the mails' footer.")
    reminder_delay_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    locale: str = Field(default="", max_length=35, description="e.g. de-DE: formats when an order names none.")


def _base_url() -> str:
    """The URL the caller reached this API at, which is the one the shop can reach too. API Gateway's own host
    carries the stage in the path; a custom domain or the local gateway does not."""
    event = router.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    host = headers.get("host", "")
    scheme = headers.get("x-forwarded-proto", "https" if host.endswith(".amazonaws.com") else "http")
    context = event.raw_event.get("requestContext") or {}
    stage = str(context.get("stage") or "") if host.endswith(".amazonaws.com") else ""
    return f"{scheme}://{host}" + (f"/{stage}" if stage else "")


def _registry() -> StoreRegistry:
    from postroom.wiring.commerce_services import commerce_services

    return commerce_services().stores


def _shown(store: Store) -> dict[str, object]:
    from postroom.commerce.stores import public_store

    return {
        **public_store(store),
        "webhook_url": _base_url() + _HOOK_PATH.format(platform=store.platform.value, store=store.id),
    }


def _own(principal: Principal, store_id: str) -> Store:
    store = _registry().get(store_id)
    if store is None or store.tenant != principal.tenant:
        raise NotFoundError(f"no store {store_id}", field="store_id")
    return store


@router.post(
    "/",
    summary="Add or replace a store and its webhook secret",
    responses={201: {"description": "Created, with the webhook URL"}, 200: {"description": "Replaced"}},
)
def create_store(
    body: Annotated[StoreCreate, Body()],
    principal: Annotated[Principal, Depends(require(Scope.STORES_MANAGE))],
) -> Response[dict[str, object]]:
    from postroom.commerce.stores import Platform, Store

    try:
        sender = parse_mailbox(body.sender)
    except AddressError as error:
        raise ValidationFailedError(str(error), field="sender") from None
    domain = sender.address.rpartition("@")[2].lower()
    if not principal.may_send_from(domain):
        raise ForbiddenError(f"this API key may not send from {domain}", field="sender")
    stores = _registry()
    existing = stores.get(body.id)
    if existing is not None and existing.tenant != principal.tenant:
        # Store ids are global (they are the webhook URL); saying "taken" leaks no more than the URL would.
        raise ConflictError(f"the store id {body.id} is taken; choose another", field="id")
    store = Store(
        id=body.id,
        platform=Platform(body.platform),
        sender=body.sender,
        shop_name=body.shop_name or body.id,
        tenant=principal.tenant,
        support_email=body.support_email,
        reminder_delay_minutes=body.reminder_delay_minutes,
        locale=body.locale,
    )
    stores.put(store, body.secret)
    return Response(
        status_code=200 if existing is not None else 201,
        content_type=content_types.APPLICATION_JSON,
        body=_shown(store),
        headers={"Location": f"/v1/stores/{store.id}"},
    )


@router.get("/", summary="The tenant's stores (never their secrets)")
def list_stores(principal: Annotated[Principal, Depends(require(Scope.STORES_MANAGE))]) -> dict[str, object]:
    return {"data": [_shown(s) for s in _registry().for_tenant(principal.tenant)]}


@router.get("/<store_id>", summary="One store, with its webhook URL (never its secret)")
def get_store(
    store_id: Annotated[str, Path(pattern=_STORE_ID)],
    principal: Annotated[Principal, Depends(require(Scope.STORES_MANAGE))],
) -> dict[str, object]:
    return _shown(_own(principal, store_id))
