"""Resend's ``/emails`` API, translated onto Postroom's accept path.

The request side turns Resend's body (``from``, ``to`` as a string or a list, ``tags`` as ``[{name, value}]``,
``attachments`` whose ``content`` is base64 text - Node's SDK - or a JSON list of byte values - the Python SDK's
documented form -, ``scheduled_at``, ``template: {id, variables}``) into a
:class:`~postroom.accept.compose.MessageInput`. The answer side renders Resend's shapes: ``{id}``, ``{data: [{id}]}``,
the ``email`` object, and its error body ``{statusCode, name, message}`` with Resend's error names, which both SDKs
read (the Python SDK picks its exception class from the status and the name).

What is honoured, and what is refused (README, "Switching from Resend"):

- ``tags`` become the message's metadata (name → value), so they come back on events and webhooks;
- ``template.id`` is the name of a Postroom stored template, ``template.variables`` its variables;
- ``scheduled_at`` must be an ISO 8601 time with a zone; Resend's natural-language form ("in 1 hour") is refused;
- refused: ``attachments[].path`` (Postroom does not fetch remote files), ``topic_id`` (Resend's audiences),
  a tag name given twice, and any unknown field.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from postroom.accept.compose import MessageInput
from postroom.core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidJsonError,
    InvalidKeyError,
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
    "ROUTES",
    "ResendEmail",
    "ResendError",
    "ResendUpdate",
    "email_object",
    "from_postroom",
    "is_resend_path",
    "raw_request",
    "refusal",
    "translate",
]

PATH_PREFIX = "/emails"
# Resend's own batch limit (https://resend.com/docs/api-reference/emails/send-batch-emails).
MAX_BATCH = 100
# The paths the Resend routes serve, with their methods (a known path with another method is a 405).
ROUTES = (
    (re.compile(r"^/emails(/batch)?/?$"), frozenset({"POST"})),
    (re.compile(r"^/emails/[^/]+/cancel/?$"), frozenset({"POST"})),
    (re.compile(r"^/emails/[^/]+/?$"), frozenset({"GET", "PATCH"})),
)

# Resend's error names (https://resend.com/docs/api-reference/errors).
MISSING_API_KEY = "missing_api_key"
INVALID_API_KEY = "invalid_api_key"
RESTRICTED_API_KEY = "restricted_api_key"
VALIDATION_ERROR = "validation_error"
INVALID_FROM_ADDRESS = "invalid_from_address"
INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
INVALID_IDEMPOTENT_REQUEST = "invalid_idempotent_request"
CONCURRENT_IDEMPOTENT_REQUESTS = "concurrent_idempotent_requests"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
APPLICATION_ERROR = "application_error"


def is_resend_path(path: str | None) -> bool:
    """Whether a request path belongs to the Resend routes (served at the root of the host, as the SDKs need)."""
    return bool(path) and (path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/"))  # type: ignore[union-attr]


@dataclass(frozen=True)
class ResendError(Exception):
    """An error as Resend answers it: an HTTP status, Resend's error ``name`` and ``message``."""

    status: int
    name: str
    message: str
    # Postroom's own structured error rides along (as on the Postmark routes), so a Postroom client and the suite's
    # error-shape checks read the same answer; Resend's SDKs read statusCode, name and message.
    code: str = "validation_error"
    field: str | None = None

    def body(self) -> dict[str, object]:
        return {
            "statusCode": self.status,
            "name": self.name,
            "message": self.message,
            "error": {"code": self.code, "message": self.message, "field": self.field},
        }


def refusal(status: int, code: str, message: str) -> ResendError:
    """A refusal made before any route ran (unknown path, wrong method, a crash), in Resend's shape."""
    name = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(status, APPLICATION_ERROR if status >= 500 else code)
    return ResendError(status, name, message, code=code)


def from_postroom(error: PostroomError) -> ResendError:
    """Postroom's error → Resend's status and error name."""
    status, name = _status_and_name(error)
    return ResendError(status, name, error.message, code=error.code, field=error.field)


def _status_and_name(error: PostroomError) -> tuple[int, str]:
    idempotency = error.field == "Idempotency-Key"
    if isinstance(error, InvalidKeyError):
        return HTTPStatus.FORBIDDEN, INVALID_API_KEY  # Resend: 403 for a key it does not know
    if isinstance(error, UnauthorizedError):
        return HTTPStatus.UNAUTHORIZED, MISSING_API_KEY
    if isinstance(error, SenderNotAllowedError):
        return HTTPStatus.FORBIDDEN, VALIDATION_ERROR  # Resend: 403 for a domain that is not verified
    if isinstance(error, ForbiddenError):
        return HTTPStatus.UNAUTHORIZED, RESTRICTED_API_KEY  # a key without the scope this route needs
    if isinstance(error, ConflictError) and idempotency:
        in_progress = "still being processed" in error.message
        return HTTPStatus.CONFLICT, CONCURRENT_IDEMPOTENT_REQUESTS if in_progress else INVALID_IDEMPOTENT_REQUEST
    if isinstance(error, ValidationFailedError) and idempotency:
        return HTTPStatus.BAD_REQUEST, INVALID_IDEMPOTENCY_KEY
    if isinstance(error, ValidationFailedError) and error.field == "from":
        return HTTPStatus.UNPROCESSABLE_ENTITY, INVALID_FROM_ADDRESS
    if isinstance(error, NotFoundError) and error.field == "template":
        return HTTPStatus.UNPROCESSABLE_ENTITY, VALIDATION_ERROR  # a bad template id is a bad request, not a route
    if isinstance(error, NotFoundError):
        return HTTPStatus.NOT_FOUND, NOT_FOUND
    if isinstance(error, InvalidJsonError | UnsupportedMediaTypeError | PayloadTooLargeError | ConflictError):
        return int(error.status), VALIDATION_ERROR
    if isinstance(error, ServiceUnavailableError):
        return HTTPStatus.SERVICE_UNAVAILABLE, APPLICATION_ERROR
    if int(error.status) == HTTPStatus.TOO_MANY_REQUESTS:
        return HTTPStatus.TOO_MANY_REQUESTS, RATE_LIMIT_EXCEEDED
    return int(error.status), APPLICATION_ERROR if int(error.status) >= 500 else VALIDATION_ERROR


def suppressed_recipients(addresses: list[str]) -> ResendError:
    return ResendError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        VALIDATION_ERROR,
        f"every recipient is on the suppression list (it bounced, complained or was suppressed): "
        f"{', '.join(addresses)}",
        code="inactive_recipient",
        field="to",
    )


def _refuse(field: str, message: str) -> ResendError:
    return ResendError(HTTPStatus.UNPROCESSABLE_ENTITY, VALIDATION_ERROR, f"{field}: {message}", field=field)


class _Strict(InputModel):
    # Resend's names as sent; unknown fields are refused (an ignored field would be a silent lie).
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Byte = Annotated[int, Field(ge=0, le=255)]


class ResendAttachment(_Strict):
    # Python's SDK sends a JSON list of byte values (its documented form), Node's SDK base64 text.
    content: str | list[Byte] | None = None
    filename: str | None = None
    path: str | None = None
    content_type: str | None = None
    content_id: str | None = None
    inline_content_id: str | None = None


class ResendTag(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,256}$")
    value: str = Field(pattern=r"^[A-Za-z0-9_-]{1,256}$")


class ResendTemplate(_Strict):
    id: str
    variables: dict[str, Any] | None = None


Recipients = str | list[str] | None


class ResendEmail(_Strict):
    """One ``POST /emails`` body (or one ``/emails/batch`` row)."""

    from_: str = Field(alias="from")
    to: str | list[str]
    subject: str | None = None
    cc: Recipients = None
    bcc: Recipients = None
    reply_to: Recipients = None
    html: str | None = None
    text: str | None = None
    headers: dict[str, str] | None = None
    attachments: list[ResendAttachment] | None = None
    tags: list[ResendTag] | None = None
    scheduled_at: str | None = None
    template: ResendTemplate | None = None
    # Resend's subscription topics belong to its audiences; Postroom cannot honour one (refused in translate).
    topic_id: str | None = None


class ResendUpdate(_Strict):
    """``PATCH /emails/{id}``: the Python SDK repeats the id in the body."""

    id: str | None = None
    scheduled_at: str


def _list(value: Recipients) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _attachment(index: int, attachment: ResendAttachment) -> dict[str, Any]:
    where = f"attachments[{index}]"
    if attachment.path is not None:
        raise _refuse(f"{where}.path", "Postroom does not fetch remote files; send the file's content")
    if attachment.content is None:
        raise _refuse(f"{where}.content", "give the file's content (base64, or a list of byte values)")
    if attachment.filename is None:
        raise _refuse(f"{where}.filename", "give the file's name")
    if attachment.content_id and attachment.inline_content_id and attachment.content_id != attachment.inline_content_id:
        raise _refuse(f"{where}.inline_content_id", "content_id and inline_content_id name the same thing")
    content = attachment.content
    if isinstance(content, list):
        content = base64.b64encode(bytes(content)).decode("ascii")
    return {
        "filename": attachment.filename,
        "content": content,
        "content_type": attachment.content_type,
        "content_id": attachment.content_id or attachment.inline_content_id,
    }


def parse_time(field: str, value: str) -> datetime:
    """An ISO 8601 time with a zone; Resend's natural-language times cannot be read exactly, so they are refused."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _refuse(field, "give an ISO 8601 time with a zone, e.g. 2030-01-31T09:00:00Z (Postroom does not read "
                             "natural-language times)") from None  # fmt: skip
    if parsed.tzinfo is None:
        raise _refuse(field, "the time needs a zone, e.g. 2030-01-31T09:00:00Z")
    return parsed


def _metadata(tags: list[ResendTag]) -> dict[str, str]:
    found: dict[str, str] = {}
    for tag in tags:
        if tag.name in found:
            raise _refuse("tags", f"tag {tag.name!r} is given twice; each name may appear once")
        found[tag.name] = tag.value
    return found


def translate(message: ResendEmail) -> MessageInput:
    """The Resend email as Postroom's MessageInput; a field Postroom cannot honour raises ResendError."""
    if message.topic_id is not None:
        raise _refuse("topic_id", "Resend's topics belong to its audiences, which Postroom does not have")
    body: dict[str, Any] = {
        "from": message.from_,
        "to": _list(message.to),
        "cc": _list(message.cc),
        "bcc": _list(message.bcc),
        "reply_to": _list(message.reply_to),
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "headers": message.headers or {},
        "attachments": [_attachment(index, item) for index, item in enumerate(message.attachments or [])],
        "metadata": _metadata(message.tags or []),
    }
    if message.scheduled_at is not None:
        body["send_at"] = parse_time("scheduled_at", message.scheduled_at)
    if message.template is not None:
        body.update(template=message.template.id, variables=message.template.variables or {})
    return MessageInput.model_validate(body)


# Postroom's message status → Resend's ``last_event``.
_LAST_EVENT = {
    "queued": "queued",
    "sending": "queued",
    "deferred": "delivery_delayed",
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
    "bounced": "bounced",
    "failed": "failed",
    "suppressed": "suppressed",
    "scheduled": "scheduled",
    "cancelled": "canceled",
}


def _mailbox(value: dict[str, str]) -> str:
    return f"{value['name']} <{value['email']}>" if value.get("name") else value["email"]


def raw_request(record: dict[str, Any]) -> dict[str, Any]:
    """What a raw message's record tells in place of a request body: sender, envelope recipients, subject."""
    return {
        "from": {"email": record["from_address"]},
        "to": [{"email": item["address"]} for item in record.get("recipients", [])],
        "subject": record.get("subject"),
    }


def email_object(record: dict[str, Any], request: dict[str, Any]) -> dict[str, object]:
    """Resend's ``email`` object from Postroom's record (``public()``) and the stored request body."""
    return {
        "object": "email",
        "id": record["id"],
        "message_id": record.get("message_id_header"),
        "from": _mailbox(request["from"]),
        "to": [_mailbox(item) for item in request.get("to", [])],
        "cc": [_mailbox(item) for item in request.get("cc", [])] or None,
        "bcc": [_mailbox(item) for item in request.get("bcc", [])] or None,
        "reply_to": [_mailbox(item) for item in request.get("reply_to", [])] or None,
        "subject": request.get("subject"),
        "html": request.get("html"),
        "text": request.get("text"),
        "created_at": record["created_at"],
        "scheduled_at": record.get("send_at"),
        "last_event": _LAST_EVENT.get(str(record["status"]), str(record["status"])),
        "tags": [{"name": name, "value": value} for name, value in (record.get("metadata") or {}).items()],
    }
