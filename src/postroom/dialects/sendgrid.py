"""SendGrid's v3 ``POST /v3/mail/send``, translated onto Postroom's accept path.

Each entry of ``personalizations`` is its own message (SendGrid's own rule: its own recipients, subject, headers,
``substitutions``, ``dynamic_template_data``, ``custom_args`` and ``send_at``, over the request's shared fields), so
one request becomes one :class:`~postroom.accept.compose.MessageInput` per personalization. The answer is SendGrid's
``202`` with an empty body and ``X-Message-Id``; an error is SendGrid's ``{"errors": [{message, field, help}]}``
(field paths as SendGrid writes them: ``personalizations.0.to.0.email``) with its HTTP status, mostly 400.

What is honoured, and what is refused (README, "Switching from SendGrid"):

- ``content`` of type ``text/plain`` and ``text/html`` (other types are refused);
- ``categories`` become the message's tags, ``custom_args`` its metadata (the request's, overridden per
  personalization);
- ``substitutions`` are replaced in the subject and bodies as SendGrid does (plain text replacement);
- ``template_id`` is the name of a Postroom stored template, ``dynamic_template_data`` its variables;
- ``send_at`` (a Unix time) schedules the message;
- ``tracking_settings``: ``click_tracking.enable`` and ``open_tracking.enable`` (``enable_text`` and
  ``substitution_tag`` are refused: Postroom rewrites links in HTML only and places its own pixel);
- refused: ``asm``, ``batch_id``, ``ip_pool_name``, ``mail_settings``, substitutions together with a template, a
  personalization ``from`` different from the request's, ``reply_to`` together with ``reply_to_list``, and any
  unknown field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
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
)
from postroom.core.untrusted import InputModel

__all__ = [
    "KNOWN_PATH",
    "MAX_PERSONALIZATIONS",
    "PATH_PREFIX",
    "SendGridError",
    "SendGridMail",
    "Shared",
    "field_path",
    "from_postroom",
    "is_sendgrid_path",
    "refusal",
    "shared_fields",
    "translate",
]

PATH_PREFIX = "/v3"
KNOWN_PATH = re.compile(r"^/v3/mail/send/?$")
# SendGrid's own limit (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send).
MAX_PERSONALIZATIONS = 1000

_HELP = "See Postroom's README, 'Switching from Postmark / Resend / SendGrid'."


def is_sendgrid_path(path: str | None) -> bool:
    """Whether a request path belongs to the SendGrid routes (``/v3/...`` at the root of the host)."""
    return bool(path) and (path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/"))  # type: ignore[union-attr]


@dataclass(frozen=True)
class SendGridError(Exception):
    """An error as SendGrid answers it: an HTTP status and ``errors: [{message, field, help}]``."""

    status: int
    message: str
    field: str | None = None
    # Postroom's own structured error rides along (as on the other dialects' routes); SendGrid's SDKs read errors.
    code: str = "validation_error"

    def body(self) -> dict[str, object]:
        return {
            "errors": [{"message": self.message, "field": self.field, "help": _HELP}],
            "error": {"code": self.code, "message": self.message, "field": self.field},
        }


def refusal(status: int, code: str, message: str) -> SendGridError:
    return SendGridError(status, message, code=code)


def field_path(field: str | None, personalization: int | None = None) -> str | None:
    """Postroom's field path (``to[0].email``) → SendGrid's (``personalizations.0.to.0.email``)."""
    if not field:
        return field
    path = re.sub(r"\[(\d+)\]", r".\1", field)
    if re.fullmatch(r"(to|cc|bcc|reply_to)\.\d+", path) or path in ("from", "reply_to"):
        path += ".email"  # Postroom names the address, SendGrid its email member
    head = path.split(".", 1)[0]
    if personalization is not None and head in {"to", "cc", "bcc", "subject", "send_at", "metadata", "variables"}:
        head_name = {"metadata": "custom_args", "variables": "dynamic_template_data"}.get(head, head)
        return f"personalizations.{personalization}.{head_name}{path[len(head) :]}"
    names = {"text": "content", "html": "content", "tags": "categories", "template": "template_id",
             "reply_to": "reply_to_list"}  # fmt: skip
    return names.get(head, head) + path[len(head) :]


def from_postroom(error: PostroomError, personalization: int | None = None) -> SendGridError:
    """Postroom's error → SendGrid's status (400 for anything wrong with the request, as SendGrid answers)."""
    field = field_path(error.field, personalization)
    if isinstance(error, UnauthorizedError):
        return SendGridError(
            HTTPStatus.UNAUTHORIZED,
            f"The provided authorization grant is invalid, expired, or revoked ({error.message})",
            code=error.code,
        )
    if isinstance(error, SenderNotAllowedError):
        return SendGridError(HTTPStatus.FORBIDDEN, error.message, "from", code=error.code)
    if isinstance(error, ForbiddenError):
        return SendGridError(HTTPStatus.FORBIDDEN, f"access forbidden: {error.message}", code=error.code)
    if isinstance(error, NotFoundError) and error.field != "template":
        return SendGridError(HTTPStatus.NOT_FOUND, error.message, field, code=error.code)
    if isinstance(error, PayloadTooLargeError | UnsupportedMediaTypeError | ServiceUnavailableError):
        return SendGridError(int(error.status), error.message, field, code=error.code)
    if isinstance(error, InvalidJsonError):
        return SendGridError(HTTPStatus.BAD_REQUEST, error.message, None, code=error.code)
    status = int(error.status)
    if status >= 500 or status in (HTTPStatus.CONFLICT, HTTPStatus.TOO_MANY_REQUESTS):
        return SendGridError(status, error.message, field, code=error.code)
    return SendGridError(HTTPStatus.BAD_REQUEST, _unprefixed(error.message, error.field, field), field, code=error.code)


def _unprefixed(message: str, postroom_field: str | None, field: str | None) -> str:
    if postroom_field and message.startswith(f"{postroom_field}:"):
        return f"{field}:{message.removeprefix(postroom_field + ':')}"
    return message


def suppressed_recipients(index: int, addresses: list[str]) -> SendGridError:
    return SendGridError(
        HTTPStatus.BAD_REQUEST,
        f"every recipient of this personalization is on the suppression list (bounced, complained or suppressed): "
        f"{', '.join(addresses)}",
        f"personalizations.{index}.to",
        code="inactive_recipient",
    )


def _refuse(field: str, message: str) -> SendGridError:
    return SendGridError(HTTPStatus.BAD_REQUEST, message, field)


class _Strict(InputModel):
    # SendGrid's names as sent; unknown fields are refused (an ignored field would be a silent lie).
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SendGridAddress(_Strict):
    email: str
    name: str | None = None


class SendGridPersonalization(_Strict):
    to: list[SendGridAddress] = Field(min_length=1)
    cc: list[SendGridAddress] | None = None
    bcc: list[SendGridAddress] | None = None
    from_: SendGridAddress | None = Field(default=None, alias="from")
    subject: str | None = None
    headers: dict[str, str] | None = None
    substitutions: dict[str, str] | None = None
    dynamic_template_data: dict[str, Any] | None = None
    custom_args: dict[str, str] | None = None
    send_at: int | None = None


class SendGridContent(_Strict):
    type: str
    value: str


class SendGridAttachment(_Strict):
    content: str
    filename: str
    type: str | None = None
    disposition: Literal["attachment", "inline"] | None = None
    content_id: str | None = None


class _Switch(_Strict):
    enable: bool | None = None


class _ClickTracking(_Switch):
    enable_text: bool | None = None


class _OpenTracking(_Switch):
    substitution_tag: str | None = None


class SendGridTracking(_Strict):
    click_tracking: _ClickTracking | None = None
    open_tracking: _OpenTracking | None = None


class SendGridMail(_Strict):
    """The ``POST /v3/mail/send`` body."""

    personalizations: list[SendGridPersonalization] = Field(min_length=1, max_length=MAX_PERSONALIZATIONS)
    from_: SendGridAddress = Field(alias="from")
    reply_to: SendGridAddress | None = None
    reply_to_list: list[SendGridAddress] | None = None
    subject: str | None = None
    content: list[SendGridContent] | None = None
    attachments: list[SendGridAttachment] | None = None
    template_id: str | None = None
    headers: dict[str, str] | None = None
    categories: list[str] | None = None
    custom_args: dict[str, str] | None = None
    send_at: int | None = None
    tracking_settings: SendGridTracking | None = None
    # Accepted as names so that a value is refused with a reason rather than as an unknown field.
    asm: dict[str, Any] | None = None
    batch_id: str | None = None
    ip_pool_name: str | None = None
    mail_settings: dict[str, Any] | None = None


def _mailbox(address: SendGridAddress) -> dict[str, str]:
    return {"email": address.email, "name": address.name or ""}


def _bodies(content: list[SendGridContent]) -> dict[str, str]:
    found: dict[str, str] = {}
    for index, part in enumerate(content):
        kind = {"text/plain": "text", "text/html": "html"}.get(part.type.lower())
        if kind is None:
            raise _refuse(f"content.{index}.type", "Postroom sends text/plain and text/html content only")
        if kind in found:
            raise _refuse(f"content.{index}.type", f"{part.type} is given twice")
        found[kind] = part.value
    return found


def _attachment(index: int, attachment: SendGridAttachment) -> dict[str, Any]:
    inline = attachment.disposition == "inline"
    if inline != bool(attachment.content_id):
        raise _refuse(f"attachments.{index}.content_id",
                      "an attachment is inline exactly when it has a content_id (disposition 'inline')")  # fmt: skip
    return {
        "filename": attachment.filename,
        "content": attachment.content,
        "content_type": attachment.type,
        "content_id": attachment.content_id,
    }


def _shared_refusals(mail: SendGridMail) -> None:
    for name in ("asm", "batch_id", "ip_pool_name", "mail_settings"):
        if getattr(mail, name) is not None:
            raise _refuse(name, f"{name} is a SendGrid account feature Postroom does not have; leave it out")
    if mail.reply_to is not None and mail.reply_to_list is not None:
        raise _refuse("reply_to_list", "give reply_to or reply_to_list, not both")
    tracking = mail.tracking_settings
    if tracking and tracking.click_tracking and tracking.click_tracking.enable_text:
        raise _refuse("tracking_settings.click_tracking.enable_text", "Postroom tracks links in the HTML body only")
    if tracking and tracking.open_tracking and tracking.open_tracking.substitution_tag is not None:
        raise _refuse("tracking_settings.open_tracking.substitution_tag", "Postroom places its own open pixel")


def _substitute(text: str | None, substitutions: dict[str, str]) -> str | None:
    if text is None:
        return None
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


def _send_at(index: int, value: int | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _refuse(f"personalizations.{index}.send_at", "send_at is not a Unix time Postroom can read") from None


@dataclass(frozen=True)
class Shared:
    """What every personalization of a request shares, translated once."""

    fields: dict[str, Any]
    bodies: dict[str, str]


def shared_fields(mail: SendGridMail) -> Shared:
    """The request-wide fields; one Postroom cannot honour raises SendGridError."""
    _shared_refusals(mail)
    tracking = mail.tracking_settings or SendGridTracking()
    fields: dict[str, Any] = {
        "from": _mailbox(mail.from_),
        "reply_to": [_mailbox(mail.reply_to)] if mail.reply_to else [_mailbox(a) for a in mail.reply_to_list or []],
        "attachments": [_attachment(index, item) for index, item in enumerate(mail.attachments or [])],
        "tags": mail.categories or [],
        "track_clicks": bool(tracking.click_tracking and tracking.click_tracking.enable),
        "track_opens": bool(tracking.open_tracking and tracking.open_tracking.enable),
    }
    return Shared(fields, _bodies(mail.content or []))


def translate(mail: SendGridMail, index: int, shared: Shared) -> MessageInput:
    """Personalization ``index`` as Postroom's MessageInput: raises SendGridError for what cannot be honoured and
    pydantic's ValidationError (Postroom's field names, see :func:`field_path`) for what is invalid."""
    return _personalized(index, mail.personalizations[index], mail, shared.bodies, shared.fields)


def _personalized(
    index: int,
    person: SendGridPersonalization,
    mail: SendGridMail,
    bodies: dict[str, str],
    shared: dict[str, Any],
) -> MessageInput:
    where = f"personalizations.{index}"
    if person.from_ is not None and person.from_.email.lower() != mail.from_.email.lower():
        raise _refuse(f"{where}.from", "Postroom sends each request from one address: use the request's from")
    substitutions = person.substitutions or {}
    if substitutions and mail.template_id is not None:
        raise _refuse(f"{where}.substitutions", "with a template_id, give the values as dynamic_template_data")
    if person.dynamic_template_data is not None and mail.template_id is None:
        raise _refuse(f"{where}.dynamic_template_data", "dynamic_template_data is used with a template_id only")
    body: dict[str, Any] = {
        **shared,
        "to": [_mailbox(a) for a in person.to],
        "cc": [_mailbox(a) for a in person.cc or []],
        "bcc": [_mailbox(a) for a in person.bcc or []],
        "headers": {**(mail.headers or {}), **(person.headers or {})},
        "metadata": {**(mail.custom_args or {}), **(person.custom_args or {})},
        "send_at": _send_at(index, person.send_at if person.send_at is not None else mail.send_at),
    }
    subject = person.subject if person.subject is not None else mail.subject
    if mail.template_id is not None:
        body.update(template=mail.template_id, variables=person.dynamic_template_data or {})
        if subject is not None:
            body["subject"] = subject  # refused by MessageInput: the template supplies the subject
        body.update(bodies)
    else:
        body.update(
            subject=_substitute(subject, substitutions),
            text=_substitute(bodies.get("text"), substitutions),
            html=_substitute(bodies.get("html"), substitutions),
        )
    return MessageInput.model_validate(body)
