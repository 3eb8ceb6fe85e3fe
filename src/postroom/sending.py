"""The accept path: every way into Postroom (HTTP API today; commerce hooks and SMTP submission later) ends here.

A message is only acknowledged once it is durable: the request body in S3, the record in DynamoDB, the pointer in SQS,
in that order. If the last step fails the caller gets a 503 and the record is marked failed, so nothing is both
acknowledged and lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from postroom.clock import isoformat, utcnow
from postroom.errors import (
    PayloadTooLargeError,
    SenderNotAllowedError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from postroom.ids import message_id
from postroom.mime import message_id_header
from postroom.queue import DeliveryTask
from postroom.raw import prepare_raw
from postroom.record import MessageRecord, RecipientState
from postroom.status import MessageStatus

if TYPE_CHECKING:
    from postroom.auth import Principal
    from postroom.models import SendRequest
    from postroom.queue import DeliveryQueue
    from postroom.settings import Settings
    from postroom.store.messages import MessageStore


@dataclass(frozen=True)
class Accepted:
    id: str
    status: MessageStatus


def check_sender(request: SendRequest, settings: Settings) -> None:
    domain = request.from_.to_address().domain
    if domain not in settings.sending_domains:
        # No open relay: only configured identities may appear in From.
        raise SenderNotAllowedError(
            f"{domain!r} is not a sending domain of this Postroom stack; configure it in SendingDomains first",
            field="from",
        )


def check_delivery(delivery: str, settings: Settings) -> None:
    if delivery == "relay" and not settings.relay_host:
        raise ValidationFailedError(
            "delivery 'relay' needs a relay host; this stack has none configured", field="delivery"
        )


def check_size(request: SendRequest, settings: Settings) -> None:
    estimate = request.estimated_mime_size()
    if estimate > settings.max_message_bytes:
        raise PayloadTooLargeError(
            f"the message would be about {estimate} bytes once encoded; the limit is {settings.max_message_bytes}",
            field="attachments",
        )


def accept(
    request: SendRequest, principal: Principal, *, settings: Settings, store: MessageStore, queue: DeliveryQueue
) -> Accepted:
    check_sender(request, settings)
    check_delivery(request.delivery.value, settings)
    check_size(request, settings)
    now = utcnow()
    msg_id = message_id()
    created = isoformat(now)
    record = MessageRecord(
        id=msg_id,
        tenant=principal.tenant,
        from_address=request.from_.email,
        subject=request.subject,
        delivery=request.delivery.value,
        message_id_header=message_id_header(msg_id, request.from_.to_address().domain),
        recipients=[RecipientState(address=address) for address in request.envelope_recipients()],
        tags=request.tags,
        metadata=request.metadata,
        created_at=created,
        updated_at=created,
    )
    store.put_request(msg_id, request.model_dump_json(by_alias=True).encode())
    return _commit(record, store, queue)


def _commit(record: MessageRecord, store: MessageStore, queue: DeliveryQueue) -> Accepted:
    """The record, then the pointer: only a message whose pointer is in SQS is acknowledged."""
    store.create(record)
    try:
        queue.enqueue(DeliveryTask(record.id))
    except Exception as exc:
        record.move_to(MessageStatus.FAILED)
        record.reason = "could not be queued for delivery; the request was refused with 503"
        store.save(record)
        raise ServiceUnavailableError("the delivery queue is unavailable; the message was not accepted") from exc
    return Accepted(id=record.id, status=record.status)


def accept_raw(
    data: bytes,
    principal: Principal,
    *,
    settings: Settings,
    store: MessageStore,
    queue: DeliveryQueue,
    mail_from: str | None = None,
    recipients: list[str] | None = None,
    delivery: str = "auto",
) -> Accepted:
    """A complete RFC 5322 message (raw endpoint, SMTP submission): cleaned up, stored as the MIME to send."""
    check_delivery(delivery, settings)
    now = utcnow()
    msg_id = message_id()
    prepared = prepare_raw(
        data, settings=settings, mail_from=mail_from, recipients=recipients, postroom_id=msg_id, now=now
    )
    created = isoformat(now)
    record = MessageRecord(
        id=msg_id,
        tenant=principal.tenant,
        from_address=prepared.mail_from.address,
        subject=prepared.subject[:998],
        delivery=delivery,
        message_id_header=prepared.message_id,
        recipients=[RecipientState(address=address) for address in prepared.recipients],
        created_at=created,
        updated_at=created,
        size=len(prepared.mime),
    )
    # The worker sends a stored MIME as it is (it only builds one from request.json when none exists).
    store.put_mime(msg_id, prepared.mime)
    return _commit(record, store, queue)
