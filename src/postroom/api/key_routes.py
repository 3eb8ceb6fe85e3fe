"""``/v1/keys``: a tenant's API keys through the API - create, list (never the secret), disable, rotate.

Rules that keep ``keys:manage`` from becoming a way up: a key is made only for the caller's own tenant, and only with
scopes the caller holds itself. Keys are named by their exact 12-digit id, never a prefix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field, field_validator

from postroom.api.deps import require
from postroom.core.auth import Principal, Scope, hash_key
from postroom.core.errors import ForbiddenError, NotFoundError, ValidationFailedError
from postroom.core.key_store import KeyInfo
from postroom.core.untrusted import InputModel
from postroom.wiring.services import services

router = Router()

_KEY_ID = r"^[0-9a-f]{12}$"
_DOMAIN = r"^([a-z0-9-]{1,63}\.)+[a-z0-9-]{2,63}$"
MAX_GRACE_SECONDS = 30 * 24 * 3600  # a rotation is a swap, not a second permanent key


class KeyCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, description="Scopes of the new key; each one the caller holds.")
    tenant: str | None = Field(default=None, description="Only the caller's own tenant (the default).")
    sending_domains: list[Annotated[str, Field(pattern=_DOMAIN)]] = Field(
        default_factory=list, description="Domains the key may send from; empty: every sending domain."
    )
    mailboxes: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, description='Mailboxes the key may use: "a@d", "*@d" or "*".'
    )
    expires_at: datetime | None = Field(default=None, description="When the key stops working (ISO 8601).")

    @field_validator("sending_domains", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return [str(v).lower().rstrip(".") for v in value] if isinstance(value, list) else value


class KeyRotate(InputModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(
        ge=0, le=MAX_GRACE_SECONDS, description="How long the old key keeps working beside the new one."
    )


def _own(principal: Principal, key_id: str) -> KeyInfo:
    # Looked up within the caller's tenant: another tenant's key answers like a missing one.
    info = services().keys.get(principal.tenant, key_id)
    if info is None:
        raise NotFoundError(f"no API key {key_id}", field="key_id")
    return info


def _created(secret: str, info: dict[str, object]) -> Response[dict[str, object]]:
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body={**info, "key": secret},
        headers={"Location": f"/v1/keys/{info['id']}"},
    )


@router.post(
    "/", summary="Create an API key", responses={201: {"description": "Created; the only time the key is shown"}}
)
def create_key(
    body: Annotated[KeyCreate, Body()],
    principal: Annotated[Principal, Depends(require(Scope.KEYS_MANAGE))],
) -> Response[dict[str, object]]:
    if body.tenant is not None and body.tenant != principal.tenant:
        raise ForbiddenError("a key can only make keys for its own tenant", field="tenant")
    beyond = sorted(s.value for s in set(body.scopes) if not principal.allows(s))
    if beyond:
        raise ForbiddenError(f"this API key cannot grant scopes it lacks: {', '.join(beyond)}", field="scopes")
    keys = services().keys
    if body.expires_at is not None:
        expires = body.expires_at if body.expires_at.tzinfo else body.expires_at.replace(tzinfo=UTC)
        if expires <= keys.now():
            raise ValidationFailedError("expires_at is in the past", field="expires_at")
    else:
        expires = None
    secret = keys.create(
        name=body.name,
        scopes=frozenset(body.scopes),
        tenant=principal.tenant,
        mailboxes=frozenset(body.mailboxes),
        sending_domains=frozenset(body.sending_domains),
        expires_at=expires,
    )
    info = keys.get(principal.tenant, hash_key(secret)[:12])
    if info is None:  # just written with a consistent key; absence would be a broken table
        raise NotFoundError("the new key could not be read back", field="key_id")
    return _created(secret, info.public(keys.now()))


@router.get("/", summary="The tenant's API keys (never the secrets)")
def list_keys(principal: Annotated[Principal, Depends(require(Scope.KEYS_MANAGE))]) -> dict[str, object]:
    keys = services().keys
    now = keys.now()
    return {"data": [k.public(now) for k in keys.for_tenant(principal.tenant)]}


@router.get("/<key_id>", summary="One API key (never the secret)")
def get_key(
    key_id: Annotated[str, Path(pattern=_KEY_ID)],
    principal: Annotated[Principal, Depends(require(Scope.KEYS_MANAGE))],
) -> dict[str, object]:
    return _own(principal, key_id).public(services().keys.now())


@router.post("/<key_id>/disable", summary="Disable an API key now")
def disable_key(
    key_id: Annotated[str, Path(pattern=_KEY_ID)],
    principal: Annotated[Principal, Depends(require(Scope.KEYS_MANAGE))],
) -> dict[str, object]:
    keys = services().keys
    keys.set_disabled(_own(principal, key_id))
    return _own(principal, key_id).public(keys.now())


@router.post(
    "/<key_id>/rotate",
    summary="Replace an API key; the old one works for a grace period",
    responses={201: {"description": "The new key (shown once) and the old key's end"}},
)
def rotate_key(
    key_id: Annotated[str, Path(pattern=_KEY_ID)],
    body: Annotated[KeyRotate, Body()],
    principal: Annotated[Principal, Depends(require(Scope.KEYS_MANAGE))],
) -> Response[dict[str, object]]:
    old = _own(principal, key_id)
    keys = services().keys
    if old.disabled or old.expired(keys.now()):
        raise ValidationFailedError(f"API key {key_id} no longer works; create a new key instead", field="key_id")
    secret, old_now = keys.rotate(old, timedelta(seconds=body.grace_seconds))
    new = keys.get(principal.tenant, hash_key(secret)[:12])
    if new is None:
        raise NotFoundError("the new key could not be read back", field="key_id")
    return _created(secret, {**new.public(keys.now()), "previous": old_now.public(keys.now())})
