"""The webhook endpoints: ``POST /v1/hooks/shopify/{store}`` and ``POST /v1/hooks/woocommerce/{store}``.

These routes are authenticated by the platform's HMAC, not by a Postroom API key: :func:`screen` is their gate and
runs before the resolver, as :mod:`postroom.api.gate` does for the send API. Then the delivery is deduplicated on the
platform's delivery id (a Powertools idempotency record per store and id) and its raw payload is stored in S3 and
queued for the commerce worker; the answer is a 200 within milliseconds, because Shopify gives up after 5 s and
retries. A redelivery gets a 200 that says ``duplicate``; a bad signature a 401.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from postroom.api.gate import body_bytes
from postroom.api.responses import error_proxy_result, error_response, exception_handler
from postroom.commerce.hook_tasks import Hook
from postroom.commerce.signatures import SHOPIFY_HEADER, WOOCOMMERCE_HEADER, verify
from postroom.commerce.stores import Platform
from postroom.core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PostroomError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from postroom.core.idempotency import IdempotencyAlreadyInProgressError
from postroom.core.untrusted import check_text
from postroom.core.untrusted import loads as untrusted_json
from postroom.wiring.commerce_services import commerce_services
from postroom.wiring.services import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.commerce.registry import CommerceServices

logger = Logger(child=True)

_HEADERS = {
    Platform.SHOPIFY: {"signature": SHOPIFY_HEADER, "topic": "X-Shopify-Topic", "delivery": "X-Shopify-Webhook-Id"},
    Platform.WOOCOMMERCE: {
        "signature": WOOCOMMERCE_HEADER,
        "topic": "X-WC-Webhook-Topic",
        "delivery": "X-WC-Webhook-Delivery-ID",
    },
}
# WooCommerce pings a new webhook's URL with this unsigned form body and activates the webhook only on a 200.
_WOO_PING = re.compile(rb"^webhook_id=\d+$")


def _header(event: dict[str, Any], name: str) -> str | None:
    wanted = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == wanted:
            return str(value)
    return None


def _platform(event: dict[str, Any]) -> Platform:
    parts = (event.get("path") or "").strip("/").split("/")
    try:
        return Platform(parts[2]) if len(parts) >= 3 and parts[:2] == ["v1", "hooks"] else Platform("")
    except ValueError:
        raise NotFoundError(f"no route {event.get('path')}") from None


def screen(event: dict[str, Any], commerce: CommerceServices) -> Hook | None:
    """Identify the store and check the signature; None for a WooCommerce ping. Raises a PostroomError to refuse."""
    platform = _platform(event)
    store_id = (event.get("pathParameters") or {}).get("store") or ""
    body = body_bytes(event)
    headers = _HEADERS[platform]
    signature = _header(event, headers["signature"])
    if platform is Platform.WOOCOMMERCE and signature is None and _WOO_PING.match(body.strip()):
        return None
    store = commerce.stores.get(store_id)
    if store is None or store.platform is not platform:
        raise NotFoundError(f"no {platform.value} store {store_id!r} is configured", field="store")
    if not verify(body, signature, commerce.stores.secret(store.id)):
        raise UnauthorizedError(f"the {headers['signature']} header does not match this store's secret",
                                field=headers["signature"])  # fmt: skip
    if store.disabled:
        raise ForbiddenError(f"store {store.id!r} is disabled", field="store")
    topic = _header(event, headers["topic"]) or ""
    # Both platforms keep the delivery id across their retries; without one, the body itself identifies the delivery.
    delivery_id = _header(event, headers["delivery"]) or hashlib.sha256(body).hexdigest()
    return Hook(platform, store, topic, delivery_id[:200], body)


app = APIGatewayRestResolver()


@exception_handler(app, PostroomError)
def _postroom_error(error: PostroomError) -> Response[str]:
    return error_response(error)


def _answer(body: dict[str, Any]) -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def _accept(hook: Hook) -> Response[str]:
    # Refused here, not by the worker later: a payload the worker could not read would be retried from the queue
    # and dead-lettered, while the platform, told 4xx now, shows the failed delivery to the shop owner.
    check_text(untrusted_json(hook.body))
    commerce = commerce_services()
    once = services().once("hook-delivery")
    if once is None:
        raise ServiceUnavailableError("this stack has no idempotency table; webhooks cannot be deduplicated")

    def enqueue() -> dict[str, str]:
        key = commerce.stash(hook)
        return {"status": "queued", "payload": key}

    try:
        result, duplicate = once.run(
            f"{hook.platform.value}:{hook.store.id}:{hook.delivery_id}", enqueue, context=app.lambda_context
        )
    except IdempotencyAlreadyInProgressError:
        # The same delivery is being queued by a concurrent invocation: a non-2xx makes the platform retry later,
        # when this answer will be "duplicate".
        raise ConflictError("this delivery is being processed right now", field="delivery_id") from None
    logger.info(
        "webhook received",
        extra={"store": hook.store.id, "topic": hook.topic, "delivery_id": hook.delivery_id, "duplicate": duplicate},
    )
    return _answer({"status": "duplicate" if duplicate else result["status"], "delivery_id": hook.delivery_id})


@app.post("/v1/hooks/shopify/<store>")
def shopify(store: str) -> Response[str]:
    return _accept(app.context["hook"])


@app.post("/v1/hooks/woocommerce/<store>")
def woocommerce(store: str) -> Response[str]:
    return _accept(app.context["hook"])


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        hook = screen(event, commerce_services())
    except PostroomError as error:
        logger.info("webhook refused", extra={"code": error.code, "status": int(error.status)})
        return error_proxy_result(error)
    if hook is None:
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"status": "pong"}), "isBase64Encoded": False}  # fmt: skip
    app.append_context(hook=hook)
    return app.resolve(event, context)
