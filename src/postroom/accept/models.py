"""The send request, as the API accepts it, validated with pydantic.

Every rule that can be checked without I/O is checked here, so a request that gets ``202`` cannot later fail for a
reason the caller could have been told about at once (bad address, header injection, undecodable attachment).
"""

from __future__ import annotations

import binascii
import mimetypes
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from postroom.core.addresses import (
    AddressError,
    EmailAddress,
    hides_control_characters,
    normalise_address,
    parse_mailbox,
)
from postroom.core.untrusted import InputModel

MAX_RECIPIENTS = 50  # SES's own limit per SendEmail call, and a sane bound for one transactional message
MAX_SUBJECT_LENGTH = 998  # RFC 5322 §2.1.1: a header line must not exceed 998 characters
MAX_ATTACHMENTS = 100
MAX_CUSTOM_HEADERS = 50

# RFC 5322 §2.2: a field name is printable US-ASCII except colon.
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
# Tab (0x09) is legal folding white space; CR/LF never, nor anything else the email package breaks header lines at
# (str.splitlines(): VT, FF, FS-RS, NEL, U+2028, U+2029), nor other C0/C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
_CONTENT_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}$")
_TAG = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# Headers Postroom writes itself. Letting a caller set them would allow spoofing the envelope-visible identity,
# smuggling recipients, or breaking the MIME structure.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Reply-To", "Sender", "Return-Path",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
        "Received", "DKIM-Signature", "Resent-From", "Resent-To", "Resent-Cc", "Resent-Bcc", "Resent-Date",
        "Resent-Message-ID", "Resent-Sender",
    )
)  # fmt: skip


class DeliveryChoice(StrEnum):
    AUTO = "auto"  # the sending domain's configured path, else the stack's default (see README, "Delivery paths")
    SES = "ses"
    SMTP = "smtp"
    RELAY = "relay"  # through the configured upstream smart host


def _no_control(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} must not contain control characters such as CR or LF")
    if hides_control_characters(value):
        raise ValueError(f"{what} must not contain an RFC 2047 encoded word that decodes to CR, LF or other controls")
    return value


class Mailbox(BaseModel):
    """An address with an optional display name. Also accepted as a string: ``"Name <user@example.com>"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: str = Field(description="The address, e.g. user@example.com; the domain may be internationalized.")
    name: str = Field(default="", description="Display name; non-ASCII is encoded per RFC 2047.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = parse_mailbox(value)
            except AddressError as exc:
                raise ValueError(str(exc)) from None
            return {"email": parsed.address, "name": parsed.name}
        return value

    @model_validator(mode="after")
    def _normalise(self) -> Mailbox:
        try:
            normalised = normalise_address(self.email, self.name)
        except AddressError as exc:
            raise ValueError(str(exc)) from None
        object.__setattr__(self, "email", normalised.address)
        object.__setattr__(self, "name", normalised.name)
        return self

    def to_address(self) -> EmailAddress:
        return EmailAddress(address=self.email, name=self.name)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


MailboxList = Annotated[list[Mailbox], BeforeValidator(_as_list)]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content: str | None = Field(
        default=None,
        description="The file's bytes, base64-encoded (standard alphabet, padding required). Give this or upload_id.",
    )
    upload_id: str | None = Field(
        default=None,
        pattern=r"^upl_[0-9a-z]{26}$",
        description="An upload from POST /v1/uploads, for files too large for a request body (the message may reach "
        "SES's 40 MB). Give this or content.",
    )
    # The uploaded object's size, looked up when the message is accepted (postroom.accept.uploads); never sent.
    _upload_size: int | None = PrivateAttr(default=None)
    content_type: str | None = Field(default=None, description="MIME type; guessed from the filename when absent.")
    content_id: str | None = Field(
        default=None,
        description="Makes the attachment an inline part referenced from the HTML as cid:<content_id>.",
    )

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        _no_control(value, "filename")
        if "/" in value or "\\" in value:
            raise ValueError("filename must not contain path separators")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        if (self.content is None) == (self.upload_id is None):
            raise ValueError("give an attachment's content (base64) or its upload_id, not both and not neither")
        return self

    @field_validator("content")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise ValueError("content is not valid base64 (standard alphabet, with padding, no line breaks)") from None
        return value

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, value: str | None) -> str | None:
        if value is not None and not _CONTENT_TYPE.match(value):
            raise ValueError("content_type must look like type/subtype, e.g. application/pdf")
        return value.lower() if value else value

    @field_validator("content_id")
    @classmethod
    def _content_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().removeprefix("<").removesuffix(">")
        if not _CONTENT_ID.match(value):
            raise ValueError("content_id may only contain letters, digits and RFC 5322 atom characters")
        return value

    def data(self) -> bytes:
        if self.content is None:  # the worker fills uploads in before it builds (postroom.accept.uploads)
            raise ValueError(f"attachment {self.filename!r} refers to upload {self.upload_id} that was not read")
        return binascii.a2b_base64(self.content.encode("ascii"), strict_mode=True)

    def decoded_size(self) -> int:
        if self.content is None:
            return self._upload_size or 0
        # 4 base64 characters carry 3 bytes, minus padding: computed without decoding (cheap on the accept path).
        return len(self.content) // 4 * 3 - self.content[-2:].count("=")

    def mime_type(self) -> str:
        if self.content_type:
            return self.content_type
        guessed, _ = mimetypes.guess_type(self.filename, strict=False)
        return guessed or "application/octet-stream"


class SendRequest(InputModel):
    """``POST /v1/messages``: one message to up to 50 recipients. Its text obeys :mod:`postroom.core.untrusted`'s
    rule."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Mailbox = Field(alias="from", description="Sender; its domain must be a configured sending domain.")
    to: MailboxList = Field(default_factory=list)
    cc: MailboxList = Field(default_factory=list)
    bcc: MailboxList = Field(default_factory=list, description="Envelope-only recipients; never written as a header.")
    reply_to: MailboxList = Field(default_factory=list)
    subject: str = Field(max_length=MAX_SUBJECT_LENGTH)
    text: str | None = Field(default=None, description="Plain-text body.")
    html: str | None = Field(default=None, description="HTML body; inline images reference attachments by cid.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers (X-… and the like).")
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    tags: list[str] = Field(default_factory=list, max_length=10)
    metadata: dict[str, str] = Field(default_factory=dict)
    delivery: DeliveryChoice = DeliveryChoice.AUTO
    # Events and tracking (postroom.events, postroom.tracking): all off unless asked for.
    track_opens: bool = Field(default=False, description="Add a tracking pixel to the HTML part (opened events).")
    track_clicks: bool = Field(
        default=False, description="Route the HTML part's http(s) links through signed redirects (clicked events)."
    )
    list_unsubscribe: bool = Field(
        default=False,
        description="Add List-Unsubscribe with a one-click (RFC 8058) link that suppresses the recipient for this "
        "sending domain, or for the topic when one is given. Needs exactly one recipient.",
    )
    topic: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="What kind of mail this is (e.g. newsletter): one-click unsubscribes then stop only this topic.",
    )

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return _no_control(value, "subject")

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_CUSTOM_HEADERS:
            raise ValueError(f"at most {MAX_CUSTOM_HEADERS} custom headers")
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name[:80]!r} is not a valid RFC 5322 field name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by Postroom and cannot be overridden")
            _no_control(header_value, f"header {name!r}")
            if len(header_value) > MAX_SUBJECT_LENGTH:
                raise ValueError(f"header {name!r} is longer than {MAX_SUBJECT_LENGTH} characters")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not _TAG.match(tag):
                raise ValueError(f"tag {tag[:80]!r} must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 20:
            raise ValueError("at most 20 metadata keys")
        for key, item in value.items():
            if not _TAG.match(key):
                raise ValueError(f"metadata key {key[:80]!r} must be 1-64 characters of letters, digits, '_.:-'")
            if len(item) > 1024:
                raise ValueError(f"metadata value for {key!r} is longer than 1024 characters")
        return value

    @model_validator(mode="after")
    def _whole_message(self) -> SendRequest:
        if self.text is None and self.html is None:
            raise ValueError("give a text or an html body (or both)")
        total = len(self.to) + len(self.cc) + len(self.bcc)
        if total == 0:
            raise ValueError("at least one recipient is needed in to, cc or bcc")
        if total > MAX_RECIPIENTS:
            raise ValueError(f"{total} recipients: at most {MAX_RECIPIENTS} in to, cc and bcc together")
        return self

    @model_validator(mode="after")
    def _one_click_unsubscribe(self) -> SendRequest:
        # The unsubscribe link names the address it unsubscribes, and one message's bytes go to every recipient:
        # with several recipients, any of them could unsubscribe the others.
        if self.list_unsubscribe and len(self.envelope_recipients()) != 1:
            raise ValueError("list_unsubscribe needs exactly one recipient (send one message per recipient)")
        if self.list_unsubscribe and any(name.lower().startswith("list-unsubscribe") for name in self.headers):
            raise ValueError("give either list_unsubscribe or your own List-Unsubscribe headers, not both")
        return self

    def envelope_recipients(self) -> list[str]:
        """Every recipient once (to, cc, bcc in that order), compared case-insensitively."""
        seen: dict[str, str] = {}
        for mailbox in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(mailbox.email.lower(), mailbox.email)
        return list(seen.values())

    def estimated_mime_size(self) -> int:
        """Upper estimate of the built message: base64 grows attachments by 4/3 plus line breaks (×1.37), text and
        HTML go quoted-printable (worst case ×3 for non-ASCII, so count ×3 to stay an upper bound)."""
        body = 3 * (len((self.text or "").encode()) + len((self.html or "").encode()))
        attachments = sum(int(a.decoded_size() * 1.37) + 512 for a in self.attachments)
        return body + attachments + 4096
