"""``/v1/mailboxes``: list and create mailboxes, page through one, sync its changes, expunge.

Paging is newest first with an opaque ``cursor``; ``since``/``before`` are key conditions (cheap at any size), the
other filters are applied by DynamoDB after reading, so a filtered page can hold fewer than ``limit`` messages and
still have a ``next_cursor``: keep following it until it is null.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import ConfigDict, Field, field_validator

from postroom.api.deps import require
from postroom.api.mail_access import MAIL_ID_PATTERN, MAILBOX_PATH_PATTERN, check_address, mailbox_for
from postroom.api.openapi_doc import NO_CONTENT, errors
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError, ValidationFailedError
from postroom.core.untrusted import InputModel
from postroom.mailbox import mailbox_store as mailstore
from postroom.mailbox.mailbox_content import URL_SECONDS
from postroom.mailbox.mailbox_errors import CannotCalculateChangesError, ConflictError, InvalidCursorError
from postroom.wiring.mailbox_wiring import appender, mail_service

router = Router()

MailboxId = Annotated[
    str, Path(pattern=MAILBOX_PATH_PATTERN, description="<address>:<key>, e.g. support@shop.example:inbox")
]


class NewMailbox(InputModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f/]+$")


class Expunge(InputModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=MAIL_ID_PATTERN)]] | None = Field(
        default=None, max_length=500, description="Only these (IMAP UID EXPUNGE); all $deleted messages when absent."
    )


_KEYWORD = re.compile(r"^\$?[a-z0-9_.-]{1,64}$")  # as PATCH /v1/mail/{id} takes them
MAX_APPEND_KEYWORDS = 50


class Append(InputModel):
    """A message a client stores itself (IMAP APPEND): a sent copy, a draft, an import."""

    model_config = ConfigDict(extra="forbid")

    raw: str = Field(min_length=1, description="The RFC 5322 message, base64 (the request stays under 6 MB)")
    keywords: list[str] = Field(default_factory=list, max_length=MAX_APPEND_KEYWORDS, description='e.g. ["$seen"]')
    received_at: datetime | None = Field(default=None, description="The internal date (IMAP); now when absent")

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        normal = [name.lower() for name in value]
        bad = [name for name in normal if not _KEYWORD.fullmatch(name)]
        if bad:
            raise ValueError(f"not a keyword: {bad[0]!r} (letters, digits, '_', '.', '-', optionally after '$')")
        return normal


@router.get("/", summary="Mailboxes with total and unread counts")
def list_mailboxes(
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
    address: Annotated[str | None, Query(description="Only this address's mailboxes")] = None,
) -> dict[str, object]:
    service = mail_service()
    if address:
        check_address(service, principal, address)
        addresses = [address.lower()]
    else:
        addresses = [a for a in service.store.list_addresses(principal.tenant) if principal.may_access(a)]
    boxes = [box.public() for a in addresses for box in service.store.mailboxes(a)]
    return {"mailboxes": boxes}


@router.post(
    "/",
    summary="Create a custom mailbox (folder) for an address",
    responses={201: {"description": "Created"}, **errors(409)},
)
def create_mailbox(
    body: Annotated[NewMailbox, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_WRITE))],
) -> Response[dict[str, object]]:
    service = mail_service()
    check_address(service, principal, body.address)
    try:
        box = service.store.create_mailbox(body.address, body.name.strip())
    except mailstore.AddressNotFoundError:
        raise NotFoundError(f"no address {body.address}; register it first", field="address") from None
    except mailstore.MailboxConflictError as error:
        raise ConflictError(str(error), field="name") from None
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=box.public())


@router.get("/<mailbox_id>", summary="One mailbox with its counts and state")
def get_mailbox(
    mailbox_id: MailboxId,
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
) -> dict[str, object]:
    return mailbox_for(mail_service(), principal, mailbox_id).public()


@router.delete("/<mailbox_id>", summary="Delete an empty custom mailbox", responses={204: NO_CONTENT, **errors(409)})
def delete_mailbox(
    mailbox_id: MailboxId,
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_WRITE))],
) -> Response[None]:
    service = mail_service()
    box = mailbox_for(service, principal, mailbox_id)
    try:
        service.store.delete_mailbox(box.id)
    except mailstore.MailboxConflictError as error:
        raise ConflictError(str(error), field="mailbox") from None
    return Response(status_code=204)


@router.get("/<mailbox_id>/messages", summary="A page of messages, newest first", responses=errors(400))
def list_messages(
    mailbox_id: MailboxId,
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
    limit: Annotated[int, Query(ge=1, le=mailstore.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    unread: Annotated[bool | None, Query()] = None,
    flagged: Annotated[bool | None, Query()] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=200)] = None,
    to: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="Received at or after (ISO 8601)")] = None,
    before: Annotated[datetime | None, Query(description="Received before (ISO 8601)")] = None,
    has_attachment: Annotated[bool | None, Query()] = None,
    raw_urls: Annotated[
        bool, Query(description="Add each message's presigned raw_url (valid raw_urls_expire_in seconds)")
    ] = False,
    headers: Annotated[
        bool,
        Query(
            description="Add each message's header block as received (`head`, base64, with its blank line; absent "
            "for a message whose header is over 16 KB): a mail client's message list without a download each"
        ),
    ] = False,
) -> dict[str, object]:
    service = mail_service()
    box = mailbox_for(service, principal, mailbox_id)  # read first: its state covers whatever changes while paging
    filters = mailstore.Filters(
        unread=unread,
        flagged=flagged,
        from_=from_,
        to=to,
        subject=subject,
        has_attachment=has_attachment,
        since_ms=_ms(since, "since"),
        before_ms=_ms(before, "before"),
    )
    try:
        page = service.store.page(box.id, limit=limit, cursor=cursor, filters=filters)
    except mailstore.InvalidCursorError as error:
        raise InvalidCursorError(str(error), field="cursor") from None
    answer: dict[str, object] = {
        "mailbox": box.id,
        "state": str(box.modseq),
        "messages": page.items,
        "next_cursor": page.cursor,
    }
    if headers:
        for item, head in zip(page.items, page.heads, strict=True):
            if head is not None:
                item["head"] = head
    if raw_urls:
        service.raw_urls(page.items, page.receipts)
        answer["raw_urls_expire_in"] = URL_SECONDS
    return answer


@router.post(
    "/<mailbox_id>/messages",
    summary="Store a message into a mailbox (IMAP APPEND: sent copies, drafts, imports)",
    responses={201: {"description": "Stored; the message's listing entry, uid included"}, **errors(400)},
)
def append_message(
    mailbox_id: MailboxId,
    body: Annotated[Append, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_WRITE))],
) -> Response[dict[str, object]]:
    box = mailbox_for(mail_service(), principal, mailbox_id)
    try:
        raw = base64.b64decode(body.raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailedError("raw: not base64", field="raw") from None
    if not raw.strip():
        raise ValidationFailedError("raw: the message is empty", field="raw")
    moment = body.received_at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValidationFailedError("received_at: give a time zone (e.g. 2024-05-01T00:00:00Z)", field="received_at")
    item = appender().append(box.id, raw, keywords=body.keywords, received_at=moment)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=mailstore.public_message(item))


@router.get(
    "/<mailbox_id>/changes",
    summary="Created, updated and destroyed message ids since a state",
    responses=errors(410),
)
def changes(
    mailbox_id: MailboxId,
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
    since: Annotated[str, Query(pattern=r"^[0-9]{1,20}$", description="A state this mailbox returned")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, object]:
    service = mail_service()
    box = mailbox_for(service, principal, mailbox_id)
    try:
        found = service.store.changes(box.id, int(since), limit)
    except mailstore.CannotCalculateChangesError as error:
        raise CannotCalculateChangesError(str(error), field="since") from None
    return {
        "mailbox": box.id,
        "old_state": since,
        "new_state": str(found.new_state),
        "has_more": found.has_more,
        "created": found.created,
        "updated": found.updated,
        "destroyed": found.destroyed,
        # The uids the destroyed messages had in this mailbox (IMAP QRESYNC); null when older changes did not keep them.
        "destroyed_uids": sorted(found.destroyed_uids) if found.destroyed_uids is not None else None,
    }


@router.post("/<mailbox_id>/expunge", summary="Remove messages flagged $deleted for good (IMAP EXPUNGE)")
def expunge(
    mailbox_id: MailboxId,
    body: Annotated[Expunge, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_WRITE))],
) -> dict[str, object]:
    service = mail_service()
    box = mailbox_for(service, principal, mailbox_id)
    removed = []
    for mail_id in service.store.deleted_in(box.id, body.ids):
        try:
            service.expunge(mail_id)
        except mailstore.MailNotFoundError:
            continue  # expunged by someone else meanwhile
        removed.append(mail_id)
    box = service.store.mailbox(box.id)
    return {"mailbox": box.id, "expunged": removed, "state": str(box.modseq), "total": box.total}


def _ms(moment: datetime | None, field: str) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValidationFailedError(f"{field}: give a time zone (e.g. 2024-05-01T00:00:00Z)", field=field)
    return int(moment.timestamp() * 1000)
