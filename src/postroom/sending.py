"""The accept path: every way into Postroom (HTTP API today; commerce hooks and SMTP submission later) ends here.

A message is only acknowledged once it is durable: the request body in S3, the record in DynamoDB, the pointer in SQS,
in that order. If the last step fails the caller gets a 503 and the record is marked failed, so nothing is both
acknowledged and lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from postroom.clock import isoformat, utcnow
from postroom.errors import PayloadTooLargeError, SenderNotAllowedError, ServiceUnavailableError
from postroom.ids import message_id, message_id_header
from postroom.queue import DeliveryTask
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
    store.create(record)
    try:
        queue.enqueue(DeliveryTask(msg_id))
    except Exception as exc:
        record.move_to(MessageStatus.FAILED)
        record.reason = "could not be queued for delivery; the request was refused with 503"
        store.save(record)
        raise ServiceUnavailableError("the delivery queue is unavailable; the message was not accepted") from exc
    return Accepted(id=msg_id, status=record.status)
