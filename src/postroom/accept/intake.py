"""The accept path: every way into Postroom (HTTP API, batch, commerce hooks; SMTP submission later) ends here.

A message is only acknowledged once it is durable: the request body in S3, the record in DynamoDB, the pointer in SQS,
in that order. If the last step fails the caller gets a 503 and the record is marked failed, so nothing is both
acknowledged and lost. A message with a future ``send_at`` gets an EventBridge Scheduler schedule instead of the
queue pointer (status ``scheduled``); the schedule puts the pointer on the queue when it is due.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger

from postroom.accept.compose import compose, send_at, template_name
from postroom.accept.delivery_queue import DeliveryTask
from postroom.accept.mime_build import originator_fields
from postroom.accept.originators import check_originators, parse_header_block
from postroom.accept.raw import prepare_raw
from postroom.core.clock import isoformat, utcnow
from postroom.core.domain_registry import DomainGate, KeyDomainGate, StaticDomainGate
from postroom.core.errors import (
    PayloadTooLargeError,
    PostroomError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from postroom.core.ids import message_id, message_id_header
from postroom.core.message_record import MessageRecord, RecipientState
from postroom.core.status import MessageStatus
from postroom.observability.metrics import count_accepted

if TYPE_CHECKING:
    from postroom.accept.delivery_queue import DeliveryQueue
    from postroom.accept.models import SendRequest
    from postroom.accept.scheduling import DeliveryScheduler
    from postroom.core.auth import Principal
    from postroom.core.message_store import MessageStore
    from postroom.core.settings import Settings
    from postroom.mailtemplates.template_store import StoredTemplate, TemplateStore

logger = Logger(child=True)


class PauseCheck(Protocol):
    """The reputation breaker's state (postroom.core.sending_pause): raises SendingPausedError while paused."""

    def check(self, tenant: str, domain: str) -> None: ...


class UploadCheck(Protocol):
    """Upload references (postroom.accept.uploads): raises unless each exists; records their sizes for check_size."""

    def check(self, tenant: str, request: SendRequest) -> None: ...


@dataclass(frozen=True)
class Accepted:
    id: str
    status: MessageStatus


# The JSON API's names for the originator fields it writes (Sender and Resent-* are reserved headers there).
_JSON_FIELDS = {"From": "from", "Reply-To": "reply_to"}


def sending_gate(settings: Settings, domains: DomainGate | None, principal: Principal | None) -> DomainGate:
    """Which From domains this caller may use: the stack's (``domains``, or the configured SendingDomains when no
    registry is wired), narrowed to the API key's own list."""
    gate = domains if domains is not None else StaticDomainGate(settings.sending_domains)
    return KeyDomainGate(gate, principal.sending_domains) if principal is not None else gate


def check_sender(
    request: SendRequest, settings: Settings, *, domains: DomainGate | None = None, principal: Principal | None = None
) -> None:
    """No open relay, no ambiguous originator: the From and Reply-To lines the worker will write go through the same
    check as a raw message's (:func:`postroom.accept.originators.check_originators`)."""
    block = originator_fields(request)
    check_originators(
        parse_header_block(block),
        sending_gate(settings, domains, principal),
        field_name=lambda title: _JSON_FIELDS.get(title, title),
    )


def check_delivery(delivery: str, settings: Settings) -> None:
    if delivery == "relay" and not settings.relay_host:
        message = "delivery 'relay' needs a relay host; this stack has none configured"
        raise ValidationFailedError(message, field="delivery")


def check_size(request: SendRequest, settings: Settings) -> None:
    estimate = request.estimated_mime_size()
    if estimate > settings.max_message_bytes:
        raise PayloadTooLargeError(
            f"the message would be about {estimate} bytes once encoded; the limit is {settings.max_message_bytes}",
            field="attachments",
        )


@dataclass
class _Prepared:
    record: MessageRecord
    body: bytes
    send_at: datetime | None


def prepare(
    request: SendRequest,
    principal: Principal,
    *,
    settings: Settings,
    templates: TemplateStore | None = None,
    template_cache: dict[str, StoredTemplate] | None = None,
    domains: DomainGate | None = None,
    pauses: PauseCheck | None = None,
    uploads: UploadCheck | None = None,
) -> _Prepared:
    """Everything short of I/O on the message itself: render the template, check sender and size, build the record."""
    due = send_at(request)
    template = template_name(request)
    request = compose(request, principal.tenant, templates, template_cache)
    check_sender(request, settings, domains=domains, principal=principal)
    if pauses is not None:
        pauses.check(principal.tenant, request.from_.to_address().domain.lower())
    check_delivery(request.delivery.value, settings)
    delivery = request.delivery.value
    if delivery == "auto" and domains is not None:
        # A domain added through the API was set up for one path; the worker resolves "auto" from settings alone.
        delivery = domains.delivery_for(request.from_.to_address().domain) or delivery
    if any(attachment.upload_id for attachment in request.attachments):
        if uploads is None:
            raise ValidationFailedError("uploads are not available on this entry point", field="attachments")
        uploads.check(principal.tenant, request)
    check_size(request, settings)
    now = utcnow()
    if due is not None and due <= now:
        due = None  # a send_at in the past means "now"
    msg_id = message_id()
    created = isoformat(now)
    record = MessageRecord(
        id=msg_id,
        tenant=principal.tenant,
        status=MessageStatus.SCHEDULED if due else MessageStatus.QUEUED,
        from_address=request.from_.email,
        subject=request.subject,
        delivery=delivery,
        message_id_header=message_id_header(msg_id, request.from_.to_address().domain),
        recipients=[RecipientState(address=address) for address in request.envelope_recipients()],
        tags=request.tags,
        metadata=request.metadata,
        topic=request.topic,
        created_at=created,
        updated_at=created,
        send_at=isoformat(due) if due else None,
        template=template,
    )
    return _Prepared(record, request.model_dump_json(by_alias=True).encode(), due)


def _persist(prepared: _Prepared, store: MessageStore) -> None:
    store.put_request(prepared.record.id, prepared.body, scheduled=prepared.send_at is not None)
    store.create(prepared.record)


def _refuse(record: MessageRecord, store: MessageStore, what: str) -> ServiceUnavailableError:
    record.move_to(MessageStatus.FAILED)
    record.reason = f"could not be {what}; the request was refused with 503"
    store.save(record)
    return ServiceUnavailableError(f"the {'scheduler' if what == 'scheduled' else 'delivery queue'} is unavailable; "
                                   "the message was not accepted")  # fmt: skip


def _schedule(prepared: _Prepared, store: MessageStore, scheduler: DeliveryScheduler | None) -> None:
    if scheduler is None:
        raise ServiceUnavailableError("scheduled sending is not configured on this stack", field="send_at")
    record = prepared.record
    try:
        scheduler.create(DeliveryTask(record.id, send_at=record.send_at), prepared.send_at)  # type: ignore[arg-type]
    except Exception as exc:
        raise _refuse(record, store, "scheduled") from exc


def accept(
    request: SendRequest,
    principal: Principal,
    *,
    settings: Settings,
    store: MessageStore,
    queue: DeliveryQueue,
    templates: TemplateStore | None = None,
    scheduler: DeliveryScheduler | None = None,
    domains: DomainGate | None = None,
    pauses: PauseCheck | None = None,
    uploads: UploadCheck | None = None,
) -> Accepted:
    prepared = prepare(
        request, principal, settings=settings, templates=templates, domains=domains, pauses=pauses, uploads=uploads
    )
    if prepared.send_at is not None and scheduler is None:
        raise ServiceUnavailableError("scheduled sending is not configured on this stack", field="send_at")
    _persist(prepared, store)
    record = prepared.record
    if prepared.send_at is not None:
        _schedule(prepared, store, scheduler)
        count_accepted(len(record.recipients))
        return Accepted(id=record.id, status=record.status)
    try:
        queue.enqueue(DeliveryTask.carrying(record.id, prepared.body))
    except Exception as exc:
        raise _refuse(record, store, "queued for delivery") from exc
    count_accepted(len(record.recipients))
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
    domains: DomainGate | None = None,
    pauses: PauseCheck | None = None,
) -> Accepted:
    """A complete RFC 5322 message (raw endpoint, SMTP submission): cleaned up, stored as the MIME to send."""
    check_delivery(delivery, settings)
    now = utcnow()
    msg_id = message_id()
    prepared = prepare_raw(
        data,
        settings=settings,
        mail_from=mail_from,
        recipients=recipients,
        postroom_id=msg_id,
        now=now,
        domains=sending_gate(settings, domains, principal),
    )
    if pauses is not None:
        pauses.check(principal.tenant, prepared.mail_from.domain.lower())
    if delivery == "auto" and domains is not None:
        delivery = domains.delivery_for(prepared.mail_from.domain) or delivery  # as in prepare(): the domain's path
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
    store.create(record)
    try:
        queue.enqueue(DeliveryTask(record.id))
    except Exception as exc:
        raise _refuse(record, store, "queued for delivery") from exc
    count_accepted(len(record.recipients))
    return Accepted(id=record.id, status=record.status)


# SQS SendMessageBatch takes 10 entries; threads overlap the S3/DynamoDB/SQS round trips of a batch's messages.
SQS_BATCH = 10
BATCH_THREADS = 16


def accept_many(
    requests: Sequence[SendRequest | PostroomError],
    principal: Principal,
    *,
    settings: Settings,
    store: MessageStore,
    queue: DeliveryQueue,
    templates: TemplateStore | None = None,
    scheduler: DeliveryScheduler | None = None,
    domains: DomainGate | None = None,
    pauses: PauseCheck | None = None,
    uploads: UploadCheck | None = None,
) -> list[Accepted | PostroomError]:
    """Accept each request on its own: a row that fails (validation, sender, size, storage) gets its error and the
    others go on. The durability order of :func:`accept` holds per message: its body and record are written before
    its pointer is queued (in SendMessageBatch calls of 10) or its schedule is created."""
    results: list[Accepted | PostroomError | None] = [None] * len(requests)
    prepared: dict[int, _Prepared] = {}
    cache: dict[str, StoredTemplate] = {}
    for index, request in enumerate(requests):
        if isinstance(request, PostroomError):
            results[index] = request
            continue
        try:
            item = prepare(
                request,
                principal,
                settings=settings,
                templates=templates,
                template_cache=cache,
                domains=domains,
                pauses=pauses,
                uploads=uploads,
            )
            if item.send_at is not None and scheduler is None:
                raise ServiceUnavailableError("scheduled sending is not configured on this stack", field="send_at")
            prepared[index] = item
        except PostroomError as error:
            results[index] = error

    def persist(index: int) -> None:
        try:
            _persist(prepared[index], store)
        except Exception:
            logger.exception("storing a batch row failed", extra={"row": index})
            results[index] = ServiceUnavailableError("storage is unavailable; this message was not accepted")
            del prepared[index]

    def dispatch_chunk(chunk: list[int]) -> None:
        tasks = [DeliveryTask(prepared[index].record.id) for index in chunk]
        try:
            failed = queue.enqueue_batch(tasks)
        except Exception:
            logger.exception("SendMessageBatch failed", extra={"rows": chunk})
            failed = {task.message_id for task in tasks}
        for index in chunk:
            record = prepared[index].record
            if record.id in failed:
                results[index] = _refuse(record, store, "queued for delivery")
            else:
                count_accepted(len(record.recipients))
                results[index] = Accepted(id=record.id, status=record.status)

    def dispatch_scheduled(index: int) -> None:
        try:
            _schedule(prepared[index], store, scheduler)
            count_accepted(len(prepared[index].record.recipients))
            results[index] = Accepted(id=prepared[index].record.id, status=prepared[index].record.status)
        except PostroomError as error:
            results[index] = error

    with ThreadPoolExecutor(max_workers=BATCH_THREADS) as pool:
        list(pool.map(persist, list(prepared)))
        immediate = [index for index, item in prepared.items() if item.send_at is None]
        chunks = [immediate[i : i + SQS_BATCH] for i in range(0, len(immediate), SQS_BATCH)]
        later = [index for index, item in prepared.items() if item.send_at is not None]
        futures = [pool.submit(dispatch_chunk, chunk) for chunk in chunks]
        futures += [pool.submit(dispatch_scheduled, index) for index in later]
        for future in futures:
            future.result()
    return [result if result is not None else ServiceUnavailableError("not processed") for result in results]
