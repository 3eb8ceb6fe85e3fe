"""``/v1/messages``: send a message, list messages, read a message's status, content and source."""

# No ``from __future__ import annotations`` here: Powertools resolves the route's type hints on every request (for
# ``Depends``), and string annotations would be compiled and evaluated each time (≈ 15 % of the accept path's CPU).

import binascii
import hashlib
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Annotated, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import ConfigDict, Field, ValidationError

from postroom.accept.compose import MessageInput
from postroom.accept.models import DeliveryChoice, SendRequest
from postroom.api import idempotent
from postroom.api.deps import require
from postroom.api.gate import RAW_MESSAGE_TYPE, body_bytes
from postroom.api.openapi_doc import errors
from postroom.api.responses import validation_failure
from postroom.core.auth import Principal, Scope
from postroom.core.errors import ConflictError, NotFoundError, ValidationFailedError
from postroom.core.message_record import MessageRecord
from postroom.core.message_store import InvalidCursorError, MessageFilter, MessageNotFoundError
from postroom.core.status import MessageStatus
from postroom.core.untrusted import InputModel, loads
from postroom.receive.sanitize import sanitize_html
from postroom.wiring.preflight_wiring import explainer
from postroom.wiring.services import services

router = Router()

MAX_PAGE = 100
# OpenAPI links from an accepted message's id to the operations that read it: they let a client (and schemathesis'
# stateful phase) follow a send with its reads. The operation ids are the ones Powertools derives from the routes.
ACCEPTED_MESSAGE_LINKS: dict[str, object] = {
    "GetMessage": {
        "operationId": "get_message_v1_messages__message_id__get",
        "parameters": {"message_id": "$response.body#/id"},
    },
    "GetMessageEvents": {
        "operationId": "message_events_v1_messages__message_id__events_get",
        "parameters": {"message_id": "$response.body#/id"},
    },
}
_MESSAGE_ID = r"^msg_[0-9a-z]{26}$"
# A UTC date or instant as created_at spells it (2026-12-02 or 2026-12-02T11:49:42.123Z); compared as text.
_INSTANT = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z?)?$"


@router.get(
    "/",
    summary="List messages, newest first",
    description="Filters combine (AND). Pass the previous answer's `next` as `cursor` to continue. One page reads a "
    "bounded slice of the tenant's index, so with a selective filter a page may hold fewer than `limit` messages (even "
    "none) and still have a `next`; `next` is null once nothing older matches.",
)
def list_messages(
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))],
    status: Annotated[MessageStatus | None, Query(description="Only messages in this status.")] = None,
    recipient: Annotated[str | None, Query(max_length=320, description="A recipient address, exactly.")] = None,
    sender: Annotated[str | None, Query(max_length=320, description="The From address, exactly.")] = None,
    tag: Annotated[str | None, Query(max_length=128, description="One of the message's tags.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the subject or a recipient address.")] = None,
    since: Annotated[str | None, Query(pattern=_INSTANT, description="Created at or after (UTC).")] = None,
    until: Annotated[str | None, Query(pattern=_INSTANT, description="Created at or before (UTC).")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="The `next` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
) -> dict[str, object]:
    where = MessageFilter(
        status=status.value if status else None,
        recipient=recipient,
        sender=sender,
        tag=tag,
        text=q,
        since=since,
        until=until,
    )
    try:
        page = services().messages.list_page(principal.tenant, where, limit=limit, cursor=cursor)
    except InvalidCursorError:
        raise ValidationFailedError("cursor is not a cursor this API returned", field="cursor") from None
    return {"data": [_summary(record) for record in page.records], "next": page.next_cursor}


def _summary(record: MessageRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "status": record.status.value,
        "from_address": record.from_address,
        "to": [r.address for r in record.recipients],
        "subject": record.subject,
        "tags": record.tags,
        "created_at": record.created_at,
        "send_at": record.send_at,
    }


@router.post(
    "/",
    summary="Send a message",
    description="Validates, stores and queues the message (or schedules it, with send_at); answers 202 once it is "
    "durable. With an Idempotency-Key header, a retry with the same key and body answers the first response again.",
    responses={
        202: {"description": "Accepted: stored and queued for delivery", "links": ACCEPTED_MESSAGE_LINKS},
        **errors(409, 503),
    },
)
def send_message(
    body: Annotated[MessageInput, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Response[dict[str, str]]:
    svc = services()

    def work() -> dict[str, object]:
        accepted = svc.accept(body, principal)
        return {
            "status": 202,
            "body": {"id": accepted.id, "status": accepted.status.value},
            "headers": {"Location": f"/v1/messages/{accepted.id}"},
        }

    # The declared type documents the 202 body in the OpenAPI document; the JSON text is that body.
    return cast(
        "Response[dict[str, str]]",
        idempotent.respond(router, "send", principal, body.model_dump(mode="json", by_alias=True), work),
    )


@router.post(
    "/explain",
    summary="Explain a send without sending (dry run)",
    description="Takes the body of `POST /v1/messages` and answers what would happen, without storing, queueing or "
    "sending anything: the delivery path and why, each recipient domain's MX hosts and TLS policy (MTA-STS), the DKIM "
    "selector and key, each recipient's suppression state, the encoded size, the pacing delay, the tenant's reputation "
    "breaker, and every reason the send would be refused (all of them, not only the first). `would_send` is true "
    "when none applies. A body the send route would reject as malformed is answered 422 here too.",
    responses={200: {"description": "What a send of this body would do"}},
)
def explain_message(
    body: Annotated[MessageInput, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> dict[str, object]:
    return explainer(services()).explain(body, principal)


class RawSendRequest(InputModel):
    """``POST /v1/messages/raw`` as JSON. The same endpoint takes ``Content-Type: message/rfc822`` with the message as
    the body and the envelope in the query string (``mail_from``, repeated ``rcpt``, ``delivery``)."""

    model_config = ConfigDict(extra="forbid")

    raw: str = Field(description="The complete RFC 5322 message, base64-encoded, CRLF line endings.")
    mail_from: str | None = Field(default=None, description="Envelope sender; default: the From address.")
    recipients: list[str] | None = Field(default=None, description="Envelope recipients; default: To, Cc and Bcc.")
    delivery: DeliveryChoice = DeliveryChoice.AUTO


def _raw_submission() -> RawSendRequest | tuple[bytes, dict[str, list[str]]]:
    event = router.current_event
    content_type = (event.headers.get("content-type") or event.headers.get("Content-Type") or "").lower()
    if content_type.startswith(RAW_MESSAGE_TYPE):
        query = event.resolved_query_string_parameters or {}
        return body_bytes(event.raw_event), {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    try:
        return RawSendRequest.model_validate(loads(event.body or ""))
    except ValidationError as exc:
        raise validation_failure(list(exc.errors())) from None


def _raw_fingerprint(
    data: bytes, mail_from: str | None, recipients: list[str] | None, delivery: str
) -> dict[str, object]:
    """What an Idempotency-Key on the raw route is checked against: the message's digest and its envelope.

    The digest stands in for the MIME so a message of megabytes is neither kept in the idempotency record nor
    serialised again to be hashed. It is taken over the decoded bytes, so the JSON and message/rfc822 forms of one
    submission are the same request.
    """
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "mail_from": mail_from,
        "recipients": recipients,
        "delivery": delivery,
    }


@router.post(
    "/raw",
    summary="Send a complete RFC 5322 message",
    description="Takes the message as JSON ({raw: base64, mail_from?, recipients?, delivery?}) or as a "
    "message/rfc822 body with the envelope in the query string (mail_from, repeated rcpt, delivery); cleans it up, "
    "stores and queues it, and answers 202 once it is durable. With an Idempotency-Key header, a retry with the same "
    "key, the same message bytes and the same envelope answers the first response again; the same key with another "
    "message or envelope is 409 idempotency_key_reused.",
    responses={202: {"description": "Accepted: stored and queued for delivery"}, **errors(409, 503)},
)
def send_raw_message(
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Response[dict[str, str]]:
    submission = _raw_submission()
    if isinstance(submission, RawSendRequest):
        try:
            data = binascii.a2b_base64(submission.raw.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise ValidationFailedError("raw is not valid base64", field="raw") from None
        mail_from, recipients, delivery = submission.mail_from, submission.recipients, submission.delivery.value
    else:
        data, query = submission
        mail_from = (query.get("mail_from") or [""])[-1] or None
        recipients = query.get("rcpt") or None
        try:
            delivery = DeliveryChoice((query.get("delivery") or ["auto"])[-1]).value
        except ValueError:
            raise ValidationFailedError("delivery must be auto, ses, smtp or relay", field="delivery") from None
    svc = services()

    def work() -> dict[str, object]:
        accepted = svc.accept_raw(data, principal, mail_from=mail_from, recipients=recipients, delivery=delivery)
        return {
            "status": 202,
            "body": {"id": accepted.id, "status": accepted.status.value},
            "headers": {"Location": f"/v1/messages/{accepted.id}"},
        }

    fingerprint = _raw_fingerprint(data, mail_from, recipients, delivery)
    # The declared type documents the 202 body in the OpenAPI document; the JSON text is that body.
    return cast("Response[dict[str, str]]", idempotent.respond(router, "raw", principal, fingerprint, work))


def _own_record(message_id: str, principal: Principal) -> MessageRecord:
    try:
        record = services().messages.get(message_id)
    except MessageNotFoundError:
        raise NotFoundError(f"no message {message_id}", field="id") from None
    if record.tenant != principal.tenant:  # another tenant's message does not exist, as far as this key knows
        raise NotFoundError(f"no message {message_id}", field="id")
    return record


def _built_mime(message_id: str, principal: Principal) -> bytes:
    _own_record(message_id, principal)
    mime = services().messages.get_mime(message_id)
    if mime is None:
        raise NotFoundError(f"{message_id} has not been built yet (it is built on its first attempt)", field="id")
    return mime


@router.get("/<message_id>", summary="A message's status and per-recipient results")
def get_message(
    message_id: Annotated[str, Path(pattern=_MESSAGE_ID, description="The id returned by the send call.")],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))],
) -> dict[str, object]:
    return _own_record(message_id, principal).public()


@router.get(
    "/<message_id>/content",
    summary="The message as sent: headers, text part and sanitized HTML part",
    description="The HTML has gone through an allow-list sanitizer (no scripts, event handlers, forms or javascript: "
    "URLs); remote images are kept, and whether to load them is the viewer's choice.",
)
def get_message_content(
    message_id: Annotated[str, Path(pattern=_MESSAGE_ID)],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))],
) -> dict[str, object]:
    parsed = message_from_bytes(_built_mime(message_id, principal), policy=policy.default)
    assert isinstance(parsed, EmailMessage)  # policy.default builds EmailMessage objects
    html = parsed.get_body(("html",))
    text = parsed.get_body(("plain",))
    return {
        "id": message_id,
        "headers": [[name, str(value)] for name, value in parsed.items()],
        "html": sanitize_html(html.get_content()) if isinstance(html, EmailMessage) else None,
        "text": text.get_content() if isinstance(text, EmailMessage) else None,
    }


@router.get("/<message_id>/source", summary="The message's MIME source as sent (message/rfc822)")
def get_message_source(
    message_id: Annotated[str, Path(pattern=_MESSAGE_ID)],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))],
) -> Response[bytes]:
    return Response(
        status_code=200,
        content_type="message/rfc822",
        body=_built_mime(message_id, principal),
        headers={"Content-Disposition": f'attachment; filename="{message_id}.eml"'},
    )


@router.post(
    "/<message_id>/resend",
    summary="Send a stored message again, now, as a new message",
    description="Takes the request the message was accepted from (its template already rendered), or for a raw "
    "submission the MIME that was built, and accepts it again through the same intake as POST /v1/messages: a new id, "
    "its own record and events. A scheduled original's send_at is not carried over (the copy goes now).",
    responses={202: {"description": "Accepted: the new message"}, **errors(409, 503)},
)
def resend_message(
    message_id: Annotated[str, Path(pattern=_MESSAGE_ID)],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Response[dict[str, str]]:
    record = _own_record(message_id, principal)
    svc = services()
    try:
        stored = svc.messages.get_request(message_id)
    except svc.messages.missing_body_errors():
        stored = None
    if stored is not None:
        accepted = svc.accept(SendRequest.model_validate_json(stored), principal)
    else:
        mime = svc.messages.get_mime(message_id)
        if mime is None:
            raise ConflictError(f"{message_id} has neither a stored request nor a built message to resend", field="id")
        recipients = [r.address for r in record.recipients]
        accepted = svc.accept_raw(mime, principal, mail_from=record.from_address, recipients=recipients)
    return Response(
        status_code=202,
        content_type="application/json",
        body={"id": accepted.id, "status": accepted.status.value, "resent_from": message_id},
        headers={"Location": f"/v1/messages/{accepted.id}"},
    )
