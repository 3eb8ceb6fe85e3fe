"""Postmark's ``/email`` API, translated onto Postroom's accept path.

The request side turns Postmark's PascalCase body (``From``, comma-joined ``To``/``Cc``/``Bcc``, ``Headers`` as a
``[{Name, Value}]`` list, ``Attachments`` with ``ContentID``, ``TemplateAlias``/``TemplateModel`` …) into a
:class:`~postroom.accept.compose.MessageInput`, so the message is validated, stored, queued, suppressed and tracked
exactly like one sent to ``POST /v1/messages``. The answer side renders Postmark's shapes: ``{To, SubmittedAt,
MessageID, ErrorCode, Message}`` and its error codes with its HTTP statuses. Every error of a Postmark route carries
``ErrorCode``: postmarker raises ``KeyError('ErrorCode')`` on any error body without one.

What the official SDKs send, and what is honoured (README, "Switching from Postmark"):

- explicit ``null`` for any optional field means "not given";
- ``TrackLinks``: ``None``/``HtmlOnly`` are honoured; ``HtmlAndText``/``TextOnly`` are refused (Postroom rewrites
  links in the HTML part only);
- ``MessageStream``: ``outbound`` (Postmark's default transactional stream) only; broadcast streams are refused;
- ``TemplateId``: refused (Postroom's templates have names, which ``TemplateAlias`` carries);
- ``InlineCss``: ``true`` only (Postroom always inlines a template's CSS);
- unknown fields are refused, never dropped.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from http import HTTPStatus
from typing import Any, Literal

from pydantic import ConfigDict, Field

from postroom.accept.compose import MessageInput
from postroom.core.errors import (
    ForbiddenError,
    InvalidJsonError,
    NotFoundError,
    PayloadTooLargeError,
    PostroomError,
    SenderNotAllowedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from postroom.core.untrusted import InputModel

__all__ = [
    "MAX_BATCH",
    "PATH_PREFIX",
    "TOKEN_HEADER",
    "BatchWithTemplates",
    "PostmarkError",
    "PostmarkMessage",
    "accepted_answer",
    "error_body",
    "from_postroom",
    "is_postmark_path",
    "translate",
]

TOKEN_HEADER = "X-Postmark-Server-Token"  # noqa: S105 - a header's name, not a secret
# Postmark's own batch limit (https://postmarkapp.com/developer/api/email-api#send-batch-emails).
MAX_BATCH = 500
PATH_PREFIX = "/email"

# Postmark's documented API error codes (https://postmarkapp.com/developer/api/overview#error-codes).
BAD_TOKEN = 10
MAINTENANCE = 100
# Not one of Postmark's documented codes (a 500 has none); any ErrorCode keeps the SDKs' error path working.
INTERNAL_ERROR = 500
INVALID_EMAIL_REQUEST = 300
SENDER_SIGNATURE_NOT_FOUND = 400
INVALID_JSON = 402
INACTIVE_RECIPIENT = 406
JSON_REQUIRED = 409
TEMPLATE_NOT_FOUND = 1101
INVALID_MESSAGE_STREAM = 1235

_INACTIVE_MESSAGE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: {addresses}. "
    "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression."
)


def is_postmark_path(path: str | None) -> bool:
    """Whether a request path belongs to the Postmark routes (served at the root of the host, as the SDKs need)."""
    return bool(path) and (path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/"))  # type: ignore[union-attr]


@dataclass(frozen=True)
class PostmarkError(Exception):
    """An error as Postmark answers it: an HTTP status, its ``ErrorCode`` and ``Message``."""

    status: int
    error_code: int
    message: str
    # Postroom's own structured error rides along, so a Postroom client (and the suite's error-shape checks) reads
    # the same answer; the Postmark SDKs read only ErrorCode and Message.
    code: str = "validation_error"
    field: str | None = None

    def body(self) -> dict[str, object]:
        return error_body(self.error_code, self.message, code=self.code, field=self.field)


def error_body(error_code: int, message: str, *, code: str, field: str | None) -> dict[str, object]:
    return {"ErrorCode": error_code, "Message": message, "error": {"code": code, "message": message, "field": field}}


# Postroom's field names → Postmark's, so an error names the field the caller actually sent.
_FIELD_NAMES = {
    "from": "From",
    "to": "To",
    "cc": "Cc",
    "bcc": "Bcc",
    "reply_to": "ReplyTo",
    "subject": "Subject",
    "text": "TextBody",
    "html": "HtmlBody",
    "headers": "Headers",
    "attachments": "Attachments",
    "tags": "Tag",
    "metadata": "Metadata",
    "track_opens": "TrackOpens",
    "track_clicks": "TrackLinks",
    "template": "TemplateAlias",
    "variables": "TemplateModel",
    "filename": "Name",
    "content": "Content",
    "content_type": "ContentType",
    "content_id": "ContentID",
}


def _postmark_field(field: str | None) -> str | None:
    if not field:
        return field
    head, sep, rest = field.partition(".")
    name, bracket, index = head.partition("[")
    translated = _FIELD_NAMES.get(name, name) + (bracket + index if bracket else "")
    return translated + (sep + ".".join(_FIELD_NAMES.get(part, part) for part in rest.split(".")) if sep else "")


def from_postroom(error: PostroomError) -> PostmarkError:
    """Postroom's error → Postmark's code and status (422 is how Postmark answers every refused request)."""
    refusal = _from_postroom(error)
    return PostmarkError(
        refusal.status, refusal.error_code, refusal.message, code=error.code, field=_postmark_field(error.field)
    )


def _from_postroom(error: PostroomError) -> PostmarkError:
    field = _postmark_field(error.field)
    message = error.message
    if error.field and field and message.startswith(f"{error.field}:"):
        message = f"{field}:{message.removeprefix(error.field + ':')}"
    if isinstance(error, UnauthorizedError):
        return PostmarkError(
            HTTPStatus.UNAUTHORIZED,
            BAD_TOKEN,
            f"Request does not contain a valid Server token ({TOKEN_HEADER}). {message}",
        )
    if isinstance(error, SenderNotAllowedError):
        return PostmarkError(HTTPStatus.UNPROCESSABLE_ENTITY, SENDER_SIGNATURE_NOT_FOUND, message)
    if isinstance(error, ForbiddenError):
        # A valid key without the messages:send scope: Postroom's 403, with the bad-token code.
        return PostmarkError(HTTPStatus.FORBIDDEN, BAD_TOKEN, message, field=field)
    if isinstance(error, InvalidJsonError):
        return PostmarkError(HTTPStatus.UNPROCESSABLE_ENTITY, INVALID_JSON, message)
    if isinstance(error, UnsupportedMediaTypeError):
        return PostmarkError(HTTPStatus.UNPROCESSABLE_ENTITY, JSON_REQUIRED, message)
    if isinstance(error, NotFoundError) and error.field == "template":
        return PostmarkError(HTTPStatus.UNPROCESSABLE_ENTITY, TEMPLATE_NOT_FOUND, message)
    if isinstance(error, PayloadTooLargeError):
        return PostmarkError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, INVALID_EMAIL_REQUEST, message)
    if isinstance(error, ServiceUnavailableError):
        return PostmarkError(HTTPStatus.SERVICE_UNAVAILABLE, MAINTENANCE, message)
    if isinstance(error, ValidationFailedError):
        return PostmarkError(HTTPStatus.UNPROCESSABLE_ENTITY, INVALID_EMAIL_REQUEST, message)
    # Any other refusal keeps its HTTP status (404, 405, 409, 429…); the code says it was an invalid request.
    return PostmarkError(int(error.status), INVALID_EMAIL_REQUEST, message)


def inactive_recipients(addresses: list[str]) -> PostmarkError:
    return PostmarkError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        INACTIVE_RECIPIENT,
        _INACTIVE_MESSAGE.format(addresses=", ".join(addresses)),
        code="inactive_recipient",
        field="To",
    )


class _Strict(InputModel):
    # Postmark's names as sent; unknown fields are refused (an ignored field would be a silent lie).
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class PostmarkHeader(_Strict):
    Name: str
    Value: str


class PostmarkAttachment(_Strict):
    Name: str
    Content: str
    ContentType: str | None = None
    # Node's SDK sends ``ContentID: null`` on ordinary attachments; postmarker sends ``cid:logo`` with the prefix.
    ContentID: str | None = None
    # Node's Attachment model carries the decoded size; checked against the content rather than dropped.
    ContentLength: int | None = None
    # Postroom makes a part inline exactly when it has a ContentID, so a Disposition saying otherwise is refused.
    Disposition: Literal["attachment", "inline"] | None = None


TrackLinksOption = Literal["None", "HtmlAndText", "HtmlOnly", "TextOnly"]


class PostmarkMessage(_Strict):
    """One ``POST /email`` body (or one ``/email/batch`` row); with a template for the ``withTemplate`` routes."""

    From: str
    To: str | None = None
    Cc: str | None = None
    Bcc: str | None = None
    ReplyTo: str | None = None
    Subject: str | None = None
    HtmlBody: str | None = None
    TextBody: str | None = None
    Headers: list[PostmarkHeader] | None = None
    Attachments: list[PostmarkAttachment] | None = None
    Tag: str | None = None
    Metadata: dict[str, str] | None = None
    MessageStream: str | None = None
    TrackOpens: bool | None = None
    TrackLinks: TrackLinksOption | None = None
    # The template fields: accepted on every route so the SDKs' explicit nulls pass; a template is used only on the
    # withTemplate routes (see ``translate``).
    TemplateId: int | None = None
    TemplateAlias: str | None = None
    TemplateModel: dict[str, Any] | None = None
    InlineCss: bool | None = None


class BatchWithTemplates(_Strict):
    Messages: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


def _mailboxes(value: str | None) -> list[dict[str, str]]:
    """A Postmark comma list (``"a@x, Ann <b@x>"``); quoted display names may contain commas."""
    if not value:
        return []
    found = []
    for name, address in getaddresses([value]):
        if not address:
            raise ValidationFailedError(f"{value!r} is not a list of email addresses", field="to")
        found.append({"email": address, "name": name})
    return found


def _refuse(field: str, message: str) -> PostmarkError:
    return PostmarkError(HTTPStatus.UNPROCESSABLE_ENTITY, INVALID_EMAIL_REQUEST, f"{field}: {message}")


def _attachment(index: int, attachment: PostmarkAttachment) -> dict[str, Any]:
    content_id = attachment.ContentID
    if content_id is not None:
        content_id = content_id.removeprefix("cid:")
    if attachment.Disposition is not None and (attachment.Disposition == "inline") != bool(content_id):
        raise _refuse(f"Attachments[{index}].Disposition", "an attachment is inline exactly when it has a ContentID")
    if attachment.ContentLength is not None:
        try:
            size = len(binascii.a2b_base64(attachment.Content.encode("ascii"), strict_mode=True))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            size = -1
        if size >= 0 and size != attachment.ContentLength:
            raise _refuse(f"Attachments[{index}].ContentLength", f"{attachment.ContentLength} is not the size of "
                          f"the decoded Content ({size} bytes)")  # fmt: skip
    return {
        "filename": attachment.Name,
        "content": attachment.Content,
        "content_type": attachment.ContentType,
        "content_id": content_id,
    }


def _headers(headers: list[PostmarkHeader]) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in headers:
        if header.Name.lower() in {name.lower() for name in found}:
            # Postroom's headers are one value per name; writing one of two would drop the other silently.
            raise _refuse("Headers", f"header {header.Name!r} is given twice; each header name may appear once")
        found[header.Name] = header.Value
    return found


def translate(message: PostmarkMessage, *, with_template: bool) -> MessageInput:
    """The Postmark message as Postroom's MessageInput; a field Postroom cannot honour raises PostmarkError."""
    if message.MessageStream not in (None, "outbound"):
        raise PostmarkError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            INVALID_MESSAGE_STREAM,
            f"MessageStream {message.MessageStream!r} is not available: Postroom sends transactional mail, "
            "Postmark's 'outbound' stream",
        )
    if message.TrackLinks in ("HtmlAndText", "TextOnly"):
        raise _refuse("TrackLinks", "Postroom tracks links in the HTML body only: use 'HtmlOnly' or 'None'")
    if message.InlineCss is False:
        raise _refuse("InlineCss", "Postroom always inlines a template's CSS; send true or leave it out")
    if message.TemplateId is not None:
        raise PostmarkError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            TEMPLATE_NOT_FOUND,
            "TemplateId: Postroom's templates are named; send the template's name as TemplateAlias",
        )
    template: dict[str, Any] = {}
    if with_template:
        if message.TemplateAlias is None:
            raise _refuse("TemplateAlias", "give the name of a stored template")
        for field, value in (("Subject", message.Subject), ("HtmlBody", message.HtmlBody),
                             ("TextBody", message.TextBody)):  # fmt: skip
            if value is not None:
                raise _refuse(field, "the template supplies the subject and bodies")
        template = {"template": message.TemplateAlias, "variables": message.TemplateModel or {}}
    elif message.TemplateAlias is not None or message.TemplateModel is not None:
        raise _refuse("TemplateAlias", "send templated mail to /email/withTemplate")
    body: dict[str, Any] = {
        "from": message.From,
        "to": _mailboxes(message.To),
        "cc": _mailboxes(message.Cc),
        "bcc": _mailboxes(message.Bcc),
        "reply_to": _mailboxes(message.ReplyTo),
        "subject": message.Subject,
        "text": message.TextBody,
        "html": message.HtmlBody,
        "headers": _headers(message.Headers or []),
        "attachments": [_attachment(index, item) for index, item in enumerate(message.Attachments or [])],
        "tags": [message.Tag] if message.Tag else [],
        "metadata": message.Metadata or {},
        "track_opens": bool(message.TrackOpens),
        "track_clicks": message.TrackLinks == "HtmlOnly",
        **template,
    }
    return MessageInput.model_validate(body)


def accepted_answer(message_id: str, to: str | None, submitted_at: datetime, message: str = "OK") -> dict[str, object]:
    """Postmark's answer to an accepted message; ``MessageID`` is Postroom's id, readable at /v1/messages/{id}."""
    return {
        "To": to or "",
        "SubmittedAt": submitted_at.isoformat(),
        "MessageID": message_id,
        "ErrorCode": 0,
        "Message": message,
    }
