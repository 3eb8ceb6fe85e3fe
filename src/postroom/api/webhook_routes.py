"""``/v1/webhooks``: subscriptions (URL, event types, secret), and each one's delivery attempts."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import ConfigDict, Field, field_validator

from postroom.api.deps import require
from postroom.api.openapi_doc import NO_CONTENT, errors
from postroom.core.auth import Principal, Scope
from postroom.core.errors import ConflictError, NotFoundError, ServiceUnavailableError, ValidationFailedError
from postroom.core.untrusted import InputModel
from postroom.events.event_model import EventType
from postroom.webhooks.payload_dialects import Dialect, new_signing_key
from postroom.webhooks.signing import new_secret, secret_key
from postroom.webhooks.subscriptions import ALL_EVENTS, SubscriptionNotFoundError
from postroom.webhooks.url_guard import UnsafeUrlError, check_url
from postroom.wiring.event_services import event_services

router = Router()

_ID = r"^wh_[0-9a-z]{26}$"
_KNOWN_TYPES = frozenset({ALL_EVENTS} | {t.value for t in EventType})


class WebhookUrlRefusedError(ValidationFailedError):
    code = "webhook_url_refused"


def _event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - _KNOWN_TYPES)
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {sorted(_KNOWN_TYPES)}")
    if not value:
        raise ValueError("give at least one event type, or '*'")
    return sorted(set(value))


class WebhookCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="https URL of a public endpoint.")
    event_types: list[str] = Field(default_factory=lambda: [ALL_EVENTS], description="Event types, or ['*'].")
    secret: str | None = Field(
        default=None, description="whsec_<base64>; generated when absent. Not for sendgrid (Postroom makes the key)."
    )
    description: str | None = Field(default=None, max_length=500)
    dialect: Dialect = Field(
        default=Dialect.STANDARD,
        description="The payload and signature format: standard (Standard Webhooks), postmark, sendgrid (arrays, "
        "ECDSA-signed; the answer shows the verification_key) or resend (Svix headers). Event types the provider has "
        "no counterpart for are not sent to postmark, sendgrid or resend subscriptions.",
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return _event_types(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            secret_key(value)  # raises ValueError with the reason
        return value


class WebhookUpdate(InputModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(default=None, description="true re-enables a disabled subscription.")

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return _event_types(value)


def _check_url(url: str) -> None:
    try:
        check_url(url, allow_private=event_services().config.webhook_allow_private)
    except UnsafeUrlError as exc:
        raise WebhookUrlRefusedError(str(exc), field="url") from None


@router.post("/", summary="Subscribe a URL to events", responses={201: {"description": "Created; shows the secret"}})
def create_webhook(
    body: Annotated[WebhookCreate, Body()],
    principal: Annotated[Principal, Depends(require(Scope.WEBHOOKS_MANAGE))],
) -> Response[dict[str, object]]:
    _check_url(body.url)
    if body.dialect is Dialect.SENDGRID:
        if body.secret is not None:
            raise ValidationFailedError("a sendgrid subscription is signed with a key Postroom makes", field="secret")
        secret = new_signing_key()
    else:
        secret = body.secret or new_secret()
    subscription = event_services().webhooks.create(
        principal.tenant,
        url=body.url,
        event_types=body.event_types,
        secret=secret,
        description=body.description,
        dialect=body.dialect,
    )
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=subscription.public(with_secret=True),
        headers={"Location": f"/v1/webhooks/{subscription.id}"},
    )


@router.get("/", summary="The tenant's subscriptions (without secrets)")
def list_webhooks(principal: Annotated[Principal, Depends(require(Scope.WEBHOOKS_MANAGE))]) -> dict[str, object]:
    return {"data": [s.public() for s in event_services().webhooks.list(principal.tenant)]}


@router.get("/<webhook_id>", summary="One subscription, its state and failure record")
def get_webhook(
    webhook_id: Annotated[str, Path(pattern=_ID)],
    principal: Annotated[Principal, Depends(require(Scope.WEBHOOKS_MANAGE))],
) -> dict[str, object]:
    try:
        return event_services().webhooks.get(principal.tenant, webhook_id).public()
    except SubscriptionNotFoundError:
        raise NotFoundError(f"no webhook {webhook_id}", field="id") from None


@router.patch("/<webhook_id>", summary="Change a subscription; enabled=true re-enables it")
def update_webhook(
    webhook_id: Annotated[str, Path(pattern=_ID)],
    body: Annotated[WebhookUpdate, Body()],
    principal: Annotated[Principal, Depends(require(Scope.WEBHOOKS_MANAGE))],
) -> dict[str, object]:
    if body.url is not None:
        _check_url(body.url)
    try:
        return (
            event_services()
            .webhooks.update(
                principal.tenant,
                webhook_id,
                url=body.url,
                event_types=body.event_types,
                description=body.description,
                enabled=body.enabled,
            )
            .public()
        )
    except SubscriptionNotFoundError:
        raise NotFoundError(f"no webhook {webhook_id}", field="id") from None


@router.delete(
    "/<webhook_id>",
    summary="Delete a subscription (queued deliveries to it are dropped)",
    responses={204: NO_CONTENT},
)
def delete_webhook(
    webhook_id: Annotated[str, Path(pattern=_ID)],
    principal: Annotated[Principal, Depends(require(Scope.WEBHOOKS_MANAGE))],
) -> Response[str]:
    if not event_services().webhooks.delete(principal.tenant, webhook_id):
        raise NotFoundError(f"no webhook {webhook_id}", field="id")
    return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")


@router.get("/<webhook_id>/attempts", summary="Delivery attempts, newest first")
def webhook_attempts(
    webhook_id: Annotated[str, Path(pattern=_ID)],
    principal: Annotated[Principal, Depends(require(Scope.WEBHOOKS_MANAGE))],
    before: Annotated[str | None, Query(pattern=r"^att_[0-9a-z]{26}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, object]:
    svc = event_services()
    try:
        svc.webhooks.get(principal.tenant, webhook_id)
    except SubscriptionNotFoundError:
        raise NotFoundError(f"no webhook {webhook_id}", field="id") from None
    attempts, cursor = svc.webhooks.attempts(principal.tenant, webhook_id, limit=limit, before=before)
    return {"data": [a.model_dump(mode="json") for a in attempts], "next": cursor}


class Replay(InputModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(pattern=r"^evt_[0-9a-z]{26}$", description="A recorded event (an attempt's event_id).")


@router.post(
    "/<webhook_id>/replay",
    summary="Deliver one recorded event to this subscription again",
    description="Queues one delivery, signed and sent like any other with the subscription's current URL and secret "
    "(a new attempt appears in /attempts). The subscription must be enabled.",
    responses={202: {"description": "Queued"}, **errors(409, 503)},
)
def replay_webhook(
    webhook_id: Annotated[str, Path(pattern=_ID)],
    body: Annotated[Replay, Body()],
    principal: Annotated[Principal, Depends(require(Scope.WEBHOOKS_MANAGE))],
) -> Response[dict[str, object]]:
    svc = event_services()
    try:
        subscription = svc.webhooks.get(principal.tenant, webhook_id)
    except SubscriptionNotFoundError:
        raise NotFoundError(f"no webhook {webhook_id}", field="id") from None
    if not subscription.enabled:
        raise ConflictError("the subscription is disabled: re-enable it first", field="id")
    if svc.events.get(principal.tenant, body.event_id) is None:
        raise NotFoundError(f"no event {body.event_id}", field="event_id")
    fanout = svc.fanout
    if fanout is None:
        raise ServiceUnavailableError("no webhook queue is configured on this stack")
    fanout.replay(principal.tenant, subscription.id, body.event_id)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body={"queued": True, "webhook_id": subscription.id, "event_id": body.event_id},
    )
