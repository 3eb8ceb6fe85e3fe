"""The public link routes, served by their own function and API (no API key: mail clients and recipients call them).
Every request is authorised by the link's HMAC signature alone.

    GET  /t/o/{token}   tracking pixel: records ``opened``, answers a 1x1 transparent GIF
    GET  /t/c/{token}   tracked link: records ``clicked``, redirects (302) to the URL that was in the message
    GET  /t/u/{token}   unsubscribe page with a button (a GET must not unsubscribe: link scanners prefetch them)
    POST /t/u/{token}   one-click unsubscribe (RFC 8058): suppresses the address for the sending domain (or topic)

An invalid or foreign token gets a plain 404, the same for every route, so the routes reveal nothing.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError

from postroom.api.responses import exception_handler
from postroom.core.ids import ulid
from postroom.core.message_store import MessageNotFoundError
from postroom.events.event_model import EventType
from postroom.events.recorder import Pending, make_event
from postroom.suppression.suppression_store import Suppression, SuppressionReason
from postroom.tracking.tokens import InvalidTokenError, LinkClaims, LinkKind
from postroom.wiring.event_services import event_services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.core.message_record import MessageRecord

logger = Logger(child=True)
app = APIGatewayRestResolver()

# The smallest transparent GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, max-age=0"}


class _UnknownLinkError(Exception):
    pass


def _claims(token: str, kind: LinkKind) -> tuple[LinkClaims, MessageRecord]:
    svc = event_services()
    signer = svc.signer()
    if signer is None:
        raise _UnknownLinkError("links are not configured")
    try:
        claims = signer.verify(token, kind)
        record = svc.core.messages.get(claims.message_id)
    except (InvalidTokenError, MessageNotFoundError) as exc:
        raise _UnknownLinkError(str(exc)) from None
    return claims, record


def _visitor() -> dict[str, Any]:
    event = app.current_event
    return {
        "user_agent": event.headers.get("User-Agent") or event.headers.get("user-agent"),
        "ip_address": event.request_context.identity.source_ip,
    }


def _record(record: MessageRecord, pending: Pending) -> None:
    event_services().recorder.record(record.tenant, [pending])


@exception_handler(app, _UnknownLinkError)
def _unknown(_: _UnknownLinkError) -> Response[str]:
    return Response(404, content_types.TEXT_PLAIN, "This link is not valid.", headers=_NO_STORE)


@exception_handler(app, RouteNotFoundError)
def _no_route(_: RouteNotFoundError) -> Response[str]:
    return Response(404, content_types.TEXT_PLAIN, "This link is not valid.", headers=_NO_STORE)


@app.get("/t/o/<token>")
def opened(token: str) -> Response[bytes]:
    claims, record = _claims(token, LinkKind.OPEN)
    event = make_event(record, EventType.OPENED, recipient=claims.recipient, source="tracking", details=_visitor())
    _record(record, Pending(event, key=f"open:{record.id}:{ulid()}"))  # every load is an open
    return Response(200, "image/gif", PIXEL, headers=_NO_STORE)


@app.get("/t/c/<token>")
def clicked(token: str) -> Response[str]:
    claims, record = _claims(token, LinkKind.CLICK)
    if not claims.url:
        raise _UnknownLinkError("a click link without a URL")
    details = {"url": claims.url, **_visitor()}
    event = make_event(record, EventType.CLICKED, recipient=claims.recipient, source="tracking", details=details)
    _record(record, Pending(event, key=f"click:{record.id}:{ulid()}"))
    return Response(302, content_types.TEXT_PLAIN, "", headers={"Location": claims.url, **_NO_STORE})


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width"><title>{title}</title></head><body style="font-family:sans-serif;max-width:32em;
margin:3em auto;padding:0 1em"><h1 style="font-size:1.3em">{title}</h1><p>{text}</p>{form}</body></html>"""


def _scope_text(record: MessageRecord) -> str:
    domain = record.from_address.rpartition("@")[2]
    return f"{record.topic} mail from {domain}" if record.topic else f"mail from {domain}"


@app.get("/t/u/<token>")
def unsubscribe_page(token: str) -> Response[str]:
    claims, record = _claims(token, LinkKind.UNSUBSCRIBE)
    form = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    body = _PAGE.format(
        title="Unsubscribe",
        text=html.escape(f"Stop {_scope_text(record)} to {claims.recipient}?"),
        form=form,
    )
    return Response(200, content_types.TEXT_HTML, body, headers=_NO_STORE)


@app.post("/t/u/<token>")
def unsubscribe(token: str) -> Response[str]:
    claims, record = _claims(token, LinkKind.UNSUBSCRIBE)
    if not claims.recipient:
        raise _UnknownLinkError("an unsubscribe link without a recipient")
    domain = record.from_address.rpartition("@")[2].lower()
    suppression = Suppression(
        address=claims.recipient,
        domain=domain,
        topic=record.topic,
        reason=SuppressionReason.UNSUBSCRIBE,
        message_id=record.id,
        details="one-click unsubscribe (RFC 8058)",
    )
    event = make_event(
        record,
        EventType.UNSUBSCRIBED,
        recipient=claims.recipient,
        source="tracking",
        details={"domain": domain, "topic": record.topic, **_visitor()},
    )
    _record(record, Pending(event, key=f"unsubscribe:{record.id}:{claims.recipient.lower()}", suppress=suppression))
    body = _PAGE.format(
        title="Unsubscribed",
        text=html.escape(f"{claims.recipient} will get no more {_scope_text(record)}."),
        form="",
    )
    return Response(200, content_types.TEXT_HTML, body, headers=_NO_STORE)


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
