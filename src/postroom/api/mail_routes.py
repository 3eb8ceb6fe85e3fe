"""``/v1/mail/{id}``: one received message - read it, its raw source and attachments, set keywords, move, delete.

Message ids stay the same when a message moves, so links to it keep working (JMAP semantics, not IMAP UIDs).
"""

from __future__ import annotations

import re
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import ConfigDict, Field, field_validator

from postroom.api.deps import require
from postroom.api.mail_access import MAIL_ID_PATTERN, MAILBOX_ID_PATTERN, check_address, mail_for
from postroom.api.openapi_doc import NO_CONTENT, errors
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError
from postroom.core.untrusted import InputModel
from postroom.mailbox import mailbox_store as mailstore
from postroom.mailbox.mailbox_content import URL_SECONDS
from postroom.mailbox.mailbox_errors import ConflictError, ModifiedError
from postroom.wiring.mailbox_wiring import mail_service

router = Router()

MailId = Annotated[str, Path(pattern=MAIL_ID_PATTERN)]
# IMAP system flags map to JMAP keywords ($seen, $flagged, $answered, $draft, $deleted); custom keywords are atoms.
_KEYWORD = re.compile(r"^\$?[a-z0-9_.-]{1,64}$")
MAX_KEYWORDS = 50


class MailUpdate(InputModel):
    model_config = ConfigDict(extra="forbid")

    keywords: dict[str, bool] = Field(
        default_factory=dict, description='{"$seen": true, "$flagged": false, "invoiced": true}: set or clear each'
    )
    mailbox: str | None = Field(default=None, pattern=MAILBOX_ID_PATTERN, description="Move to this mailbox")
    unchanged_since: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,20}$",
        description="Change the keywords only if the message's modseq is still at most this (IMAP UNCHANGEDSINCE); "
        "412 modified otherwise",
    )

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: dict[str, bool]) -> dict[str, bool]:
        if len(value) > MAX_KEYWORDS:
            raise ValueError(f"at most {MAX_KEYWORDS} keywords per request")
        normal = {name.lower(): flag for name, flag in value.items()}
        bad = [name for name in normal if not _KEYWORD.fullmatch(name)]
        if bad:
            raise ValueError(f"not a keyword: {bad[0]!r} (letters, digits, '_', '.', '-', optionally after '$')")
        return normal


@router.get("/<mail_id>", summary="A message: headers, bodies (HTML as received and sanitized), attachments")
def get_mail(
    mail_id: MailId,
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
) -> dict[str, object]:
    service = mail_service()
    return service.document(mail_for(service, principal, mail_id))


@router.get(
    "/<mail_id>/raw",
    summary="The RFC 822 source, as received (redirect to a presigned S3 URL)",
    responses={302: {"description": "Redirect (Location) to a presigned S3 URL, also given in the body"}},
)
def get_raw(
    mail_id: MailId,
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
) -> Response[dict[str, object]]:
    service = mail_service()
    return _redirect(service.raw_url(mail_for(service, principal, mail_id)))


@router.get(
    "/<mail_id>/attachments/<part>",
    summary="Download one attachment (redirect to a presigned S3 URL)",
    responses={302: {"description": "Redirect (Location) to a presigned S3 URL, also given in the body"}},
)
def get_attachment(
    mail_id: MailId,
    part: Annotated[str, Path(pattern=r"^[0-9]{1,4}(\.[0-9]{1,4}){0,20}$", description="The attachment's part")],
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_READ))],
    redirect: Annotated[
        bool,
        Query(
            description="false: answer 200 with the URL instead of a 302 (a page whose CSP allows fetches only "
            "to its own origin, like the console, then navigates to it)"
        ),
    ] = True,
) -> Response[dict[str, object]]:
    service = mail_service()
    item = mail_for(service, principal, mail_id)
    parts = service.part_names(item)
    if part not in parts:
        raise NotFoundError(f"{mail_id} has no attachment {part}", field="part")
    return _redirect(service.part_url(item, parts[part]), follow=redirect)


@router.patch("/<mail_id>", summary="Set or clear keywords, and/or move to another mailbox", responses=errors(409, 412))
def update_mail(
    mail_id: MailId,
    body: Annotated[MailUpdate, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_WRITE))],
) -> dict[str, object]:
    service = mail_service()
    item = mail_for(service, principal, mail_id)
    try:
        if body.mailbox:
            check_address(service, principal, mailstore.split_mailbox_id(body.mailbox)[0])
            item = service.store.move(mail_id, body.mailbox)
        if body.keywords:
            add = [k for k, on in body.keywords.items() if on]
            remove = [k for k, on in body.keywords.items() if not on]
            since = int(body.unchanged_since) if body.unchanged_since is not None else None
            item = service.store.set_keywords(mail_id, add, remove, unchanged_since=since)
    except mailstore.MailModifiedError as error:
        raise ModifiedError(str(error), field="unchanged_since") from None
    except mailstore.MailboxNotFoundError:
        raise NotFoundError(f"no mailbox {body.mailbox}", field="mailbox") from None
    except mailstore.MailboxConflictError as error:
        raise ConflictError(str(error), field="mailbox") from None
    return mailstore.public_message(item)


class MailCopy(InputModel):
    model_config = ConfigDict(extra="forbid")

    mailbox: str = Field(pattern=MAILBOX_ID_PATTERN, description="The mailbox (of the same address) to copy into")


@router.post(
    "/<mail_id>/copy",
    summary="Copy into another mailbox of the same address (IMAP COPY): a new message id",
    responses={201: {"description": "Copied: the new message"}, **errors(409)},
)
def copy_mail(
    mail_id: MailId,
    body: Annotated[MailCopy, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_WRITE))],
) -> Response[dict[str, object]]:
    service = mail_service()
    mail_for(service, principal, mail_id)
    check_address(service, principal, mailstore.split_mailbox_id(body.mailbox)[0])
    try:
        copied = service.store.copy(mail_id, body.mailbox)
    except mailstore.MailboxNotFoundError:
        raise NotFoundError(f"no mailbox {body.mailbox}", field="mailbox") from None
    except mailstore.MailboxConflictError as error:
        raise ConflictError(str(error), field="mailbox") from None
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=mailstore.public_message(copied))


@router.delete(
    "/<mail_id>",
    summary="Move to Trash; a message already in Trash is expunged",
    responses={200: {"description": "Moved to Trash"}, 204: NO_CONTENT},
)
def delete_mail(
    mail_id: MailId,
    principal: Annotated[Principal, Depends(require(Scope.MAILBOX_WRITE))],
) -> Response[dict[str, object] | None]:
    service = mail_service()
    item = mail_for(service, principal, mail_id)
    trash = mailstore.mailbox_id(item["address"], "trash")
    if item["mailbox"] == trash:
        service.expunge(mail_id)
        return Response(status_code=204)
    moved = service.store.move(mail_id, trash)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=mailstore.public_message(moved))


def _redirect(url: str, *, follow: bool = True) -> Response[dict[str, object]]:
    return Response(
        status_code=302 if follow else 200,
        content_type=content_types.APPLICATION_JSON,
        body={"url": url, "expires_in": URL_SECONDS},
        headers={"Location": url} if follow else {},
    )
