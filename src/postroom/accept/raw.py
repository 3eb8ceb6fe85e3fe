"""Raw RFC 5322 submissions (``POST /v1/messages/raw``, SMTP submission): the cleanup stage.

Like Postfix's cleanup, this is the one place a message written by someone else is checked and normalised before it is
queued: structure and header rules are enforced, the envelope is settled (explicit, or taken from the headers as
``sendmail -t`` does), ``Bcc`` is removed, and a missing ``Message-ID``/``Date`` is added. The submitted bytes are
otherwise kept as they are — re-serialising would refold headers and break a signature the sender already added —
except when the message carries 8-bit data: then each 8-bit part is re-encoded (quoted-printable or base64) so the
stored message is 7-bit clean and any MTA, and SES, takes it unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import errors as email_errors
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses

from postroom.accept.mime_build import message_id_header
from postroom.accept.models import MAX_RECIPIENTS
from postroom.accept.originators import check_originators
from postroom.core.addresses import AddressError, EmailAddress, normalise_address
from postroom.core.domain_registry import DomainGate, StaticDomainGate
from postroom.core.errors import PayloadTooLargeError, SenderNotAllowedError, ValidationFailedError
from postroom.core.settings import Settings

_HEADER_NAME = re.compile(rb"^[!-9;-~]+$")
_MAX_LINE = 998  # RFC 5322 §2.1.1, without the CRLF
# RFC 5322 §3.6: these fields may appear at most once.
_SINGLE_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to")
# Defects that mean the structure cannot be trusted (a MIME bomb, a truncated upload, a forged boundary).
_FATAL_DEFECTS = (
    email_errors.MissingHeaderBodySeparatorDefect,
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.CloseBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
    email_errors.NoBoundaryInMultipartDefect,
    email_errors.InvalidMultipartContentTransferEncodingDefect,
)
_KEEP_SOURCE_HEADERS = policy.SMTP.clone(refold_source="none")
MAX_PARTS = 500
MAX_DEPTH = 20


class InvalidMessageError(ValidationFailedError):
    code = "invalid_message"


@dataclass(frozen=True)
class PreparedMessage:
    mail_from: EmailAddress
    recipients: list[str]
    subject: str
    message_id: str
    mime: bytes


def _fail(message: str, field: str = "message") -> InvalidMessageError:
    return InvalidMessageError(message, field=field)


def _split_header(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if data.endswith(b"\r\n") and b"\r\n\r\n" not in data:
            return data, b""  # headers only, no body
        raise _fail("no empty line between the header and the body (RFC 5322 §2.1)")
    return data[: end + 2], data[end + 4 :]


def _header_fields(block: bytes) -> list[list[bytes]]:
    """Header block → fields, each a list of its physical lines (first line + continuations)."""
    fields: list[list[bytes]] = []
    for line in block.split(b"\r\n")[:-1]:
        if len(line) > _MAX_LINE:
            raise _fail(f"a header line is longer than {_MAX_LINE} characters (RFC 5322 §2.1.1)")
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise _fail("the message starts with a continuation line")
            fields[-1].append(line)
            continue
        name, colon, _ = line.partition(b":")
        if not colon or not _HEADER_NAME.match(name):
            raise _fail(f"malformed header line {line[:60]!r}: expected 'Name: value' (RFC 5322 §2.2)")
        fields.append([line])
    return fields


def _field_name(field: list[bytes]) -> str:
    return field[0].partition(b":")[0].decode("ascii").lower()


def _check_bytes(data: bytes, settings: Settings) -> None:
    if len(data) > settings.max_message_bytes:
        raise PayloadTooLargeError(
            f"the message is {len(data)} bytes; the limit is {settings.max_message_bytes}", field="message"
        )
    if not data.strip():
        raise _fail("the message is empty")
    if b"\x00" in data:
        raise _fail("the message contains NUL bytes")
    if re.search(rb"(?<!\r)\n", data) or re.search(rb"\r(?!\n)", data):
        # RFC 5321 §2.3.8: bare CR or LF are not line ends; accepting them is how SMTP smuggling starts.
        raise _fail("the message has bare LF or CR line endings; every line must end with CRLF")


def _walk_checked(msg: EmailMessage) -> None:
    count = 0

    def visit(part: EmailMessage, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_PARTS:
            raise _fail(f"the message has more than {MAX_PARTS} MIME parts")
        if depth > MAX_DEPTH:
            raise _fail(f"MIME parts are nested deeper than {MAX_DEPTH} levels")
        for defect in part.defects:
            if isinstance(defect, _FATAL_DEFECTS):
                raise _fail(f"malformed MIME structure: {type(defect).__name__}: {defect}")
        if part.is_multipart():
            for child in part.iter_parts():
                visit(child, depth + 1)  # type: ignore[arg-type]

    visit(msg, 0)


def _addresses(values: list[str], field: str) -> list[EmailAddress]:
    result = []
    for name, email in getaddresses(values):
        if not email:
            continue
        try:
            result.append(normalise_address(email, name))
        except AddressError as exc:
            raise _fail(f"{field}: {exc}", field=field) from None
    return result


def _seven_bit(msg: EmailMessage) -> None:
    """Re-encode every 8-bit leaf part as quoted-printable (text) or base64 (everything else)."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        payload = part.get_payload(decode=True) or b""
        # A leaf part decodes to bytes; typeshed's union also admits a Message (message/rfc822 parts, which are
        # multipart to the email package and skipped above).
        assert isinstance(payload, bytes)
        if cte in ("quoted-printable", "base64") or payload.isascii():
            continue
        if part.get_content_maintype() == "text":
            text = part.get_content()
            part.set_content(text, subtype=part.get_content_subtype(), charset="utf-8", cte="quoted-printable")
        else:
            maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
            part.set_content(payload, maintype=maintype, subtype=subtype, cte="base64")


def prepare_raw(
    data: bytes,
    *,
    settings: Settings,
    mail_from: str | None = None,
    recipients: list[str] | None = None,
    postroom_id: str,
    now: datetime,
    domains: DomainGate | None = None,
) -> PreparedMessage:
    """Check and normalise a raw message. A message without a Message-ID gets one built from ``postroom_id`` on the
    sender's domain, so bounces and replies map back to the record."""
    _check_bytes(data, settings)
    header_block, body = _split_header(data)
    fields = _header_fields(header_block)
    names = [_field_name(f) for f in fields]
    for name in _SINGLE_FIELDS:
        if names.count(name) > 1:
            raise _fail(f"the message has {names.count(name)} {name.title()} headers; RFC 5322 §3.6 allows one")
    if "from" not in names:
        raise _fail("the message has no From header", field="From")
    if not header_block.isascii():
        raise _fail("header fields contain 8-bit bytes: encode them per RFC 2047 (SMTPUTF8 is not supported yet)")

    msg = BytesParser(policy=policy.default).parsebytes(data)
    _walk_checked(msg)
    # The header block below keeps these fields byte for byte, so the addresses checked here are the ones that leave.
    gate = domains if domains is not None else StaticDomainGate(settings.sending_domains)
    sender = check_originators(msg, gate).author
    envelope_from = _addresses([mail_from], "mail_from")[0] if mail_from else sender
    refusal = gate.refusal(envelope_from.domain)
    if refusal is not None:
        raise SenderNotAllowedError(refusal, field="mail_from")

    if recipients:
        envelope = _addresses(recipients, "recipients")
    else:
        headers = [str(v) for name in ("To", "Cc", "Bcc") for v in msg.get_all(name, [])]
        envelope = _addresses(headers, "To")
    unique = list({a.address.lower(): a.address for a in envelope}.values())
    if not unique:
        raise _fail("no recipients: give them explicitly or in To/Cc/Bcc", field="recipients")
    if len(unique) > MAX_RECIPIENTS:
        raise _fail(f"{len(unique)} recipients: at most {MAX_RECIPIENTS}", field="recipients")

    # Settle the header block: Bcc never travels; Message-ID and Date are added when missing (RFC 5322 §3.6).
    kept = [f for f, n in zip(fields, names, strict=True) if n != "bcc"]
    added: list[bytes] = []
    existing_id = msg.get("Message-ID")
    final_id = str(existing_id).strip() if existing_id else message_id_header(postroom_id, sender.domain)
    if not existing_id:
        added.append(f"Message-ID: {final_id}".encode())
    if "date" not in names:
        added.append(f"Date: {format_datetime(now)}".encode())
    if "mime-version" not in names and ("content-type" in names):
        added.append(b"MIME-Version: 1.0")
    new_header = b"".join(b"\r\n".join(f) + b"\r\n" for f in kept) + b"".join(h + b"\r\n" for h in added)
    mime = new_header + b"\r\n" + body

    if not body.isascii():
        rebuilt = BytesParser(policy=policy.default).parsebytes(mime)
        _seven_bit(rebuilt)
        # refold_source="none": header lines from the submission are written as they came. The default refolds any
        # line over 78 characters, and a refolded From is no longer the From that was checked (nor the one signed).
        mime = rebuilt.as_bytes(policy=_KEEP_SOURCE_HEADERS)

    return PreparedMessage(
        mail_from=envelope_from,
        recipients=unique,
        subject=str(msg.get("Subject", "")),
        message_id=final_id,
        mime=mime,
    )
