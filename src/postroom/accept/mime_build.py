"""Build the RFC 5322 message from a validated send request, with the email stdlib.

Structure, from the simplest that fits:
    text/plain                                      text only
    multipart/alternative [text, html]              html (a text part is generated when none was given)
    multipart/alternative [text, related[html, inline images…]]   html with inline images (content_id)
    multipart/mixed [<one of the above>, attachments…]            with attachments

The output is 7-bit clean (quoted-printable or base64, whichever is smaller, wherever a part is not plain short-lined
ASCII), lines end in CRLF and never exceed 998 characters (RFC 5322 §2.1.1): any MTA, and SES, takes it unchanged.
Non-ASCII display names, subjects and header values become RFC 2047 encoded words, non-ASCII file names RFC 2231
parameters. The message stays 7-bit even where a server offers SMTPUTF8 (RFC 6531/6532): the same stored bytes go to
SES and to every MX, and encoded words are read everywhere. Bcc is never written.
"""

from __future__ import annotations

import re
from datetime import datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime

from postroom.accept.header_encoding import fold_address_field, fold_unstructured_field
from postroom.accept.models import Mailbox, SendRequest
from postroom.core.html_text import html_to_text
from postroom.core.ids import message_id_header  # re-exported: it used to live here

# policy.SMTP: CRLF line endings, RFC 2047 encoded words for non-ASCII headers, folding at 78 characters.
__all__ = ["SMTP_POLICY", "build_message", "message_id_header", "originator_fields", "render"]

# refold_source="none": the address and text fields are written pre-folded (set_raw, below). With the default
# ("long") the email package refolds any such field with a line over 78 characters - a long address is one - and its
# refold drops the quotes of a display name: '"Shop, Inc" <long-address@…>' left as 'Shop, Inc <long-address@…>',
# two mailboxes to a receiver, not the one the accept path checked.
SMTP_POLICY = policy.SMTP.clone(max_line_length=78, refold_source="none")
_MAX_LINE = 998


# RFC 2045 §2.7: 7bit data is short lines of US-ASCII without NUL; bare CR and LF only as line ends. Other controls
# are legal there but fragile in transit, so they too send a part to an encoding.
_SEVEN_BIT_LINE = re.compile(r"^[\t\x20-\x7e]*$")
_QP_LITERAL = frozenset(range(0x20, 0x7F)) - {ord("=")} | {ord("\t"), ord("\r"), ord("\n")}


def _text_cte(content: str) -> str:
    """7bit when every line is short printable ASCII. Otherwise whichever of quoted-printable and base64 is smaller
    (RFC 2045 §6.7 vs §6.8): quoted-printable keeps mostly-ASCII text readable and DKIM-stable, base64 keeps Cyrillic,
    Greek, Arabic, CJK or emoji-heavy text from tripling in size (each such byte costs three in quoted-printable)."""
    lines = content.splitlines()
    if all(len(line) <= _MAX_LINE and _SEVEN_BIT_LINE.match(line) for line in lines):
        return "7bit"
    data = content.encode("utf-8")
    escaped = sum(1 for byte in data if byte not in _QP_LITERAL)
    quoted_printable = len(data) + 2 * escaped  # "=XX" for each escaped byte; soft line breaks cost both alike
    base64 = (len(data) + 2) // 3 * 4
    return "quoted-printable" if quoted_printable <= base64 else "base64"


def _add_text(part: MIMEPart, content: str, subtype: str) -> None:
    part.set_content(content, subtype=subtype, charset="utf-8", cte=_text_cte(content))


# The id part of a Postroom Message-ID: the ULID of ``msg_<ulid>`` (Crockford base32, lower-case, 26 characters).
_POSTROOM_ID_PART = re.compile(r"^<([0-9a-hjkmnp-tv-z]{26})@[^<>@\s]+>$")


def postroom_id_from_message_id(header: str) -> str | None:
    """The inverse of :func:`message_id_header`: ``"<01abc…@shop.example>"`` → ``"msg_01abc…"``, else None."""
    match = _POSTROOM_ID_PART.match(header.strip())
    return f"msg_{match[1]}" if match else None


def build_message(request: SendRequest, *, message_id: str, date: datetime) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY)
    _set_addresses(msg, "From", [request.from_])
    if request.to:
        _set_addresses(msg, "To", request.to)
    if request.cc:
        _set_addresses(msg, "Cc", request.cc)
    if request.reply_to:
        _set_addresses(msg, "Reply-To", request.reply_to)
    _set_text(msg, "Subject", request.subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    for name, value in request.headers.items():
        _set_text(msg, name, value)

    inline = [a for a in request.attachments if a.content_id]
    regular = [a for a in request.attachments if not a.content_id]

    if request.html is None:
        _add_text(msg, request.text or "", "plain")
    else:
        _add_text(msg, request.text if request.text is not None else html_to_text(request.html), "plain")
        msg.add_alternative("")  # placeholder part, filled below so its encoding can be chosen explicitly
        html_part = list(msg.iter_parts())[1]
        _add_text(html_part, request.html, "html")
        for attachment in inline:
            maintype, _, subtype = attachment.mime_type().partition("/")
            html_part.add_related(
                attachment.data(),
                maintype=maintype,
                subtype=subtype,
                cid=f"<{attachment.content_id}>",
                filename=attachment.filename,
                disposition="inline",
            )

    for attachment in regular + ([] if request.html is not None else inline):
        maintype, _, subtype = attachment.mime_type().partition("/")
        # add_attachment base64-encodes bytes: binary-safe and 7-bit clean.
        msg.add_attachment(attachment.data(), maintype=maintype, subtype=subtype, filename=attachment.filename)
    for part in msg.walk():
        # add_related/add_attachment promote parts to multiparts and stamp them with MIME-Version; RFC 2045 §4
        # wants it once, in the top-level header.
        if part is not msg:
            del part["MIME-Version"]
    return msg


# Pre-folded and stored as they are (set_raw): the email package's refolding moves spaces around (see mimeheaders).
def _set_text(msg: EmailMessage, name: str, value: str) -> None:
    msg.set_raw(name, fold_unstructured_field(name, value))


def _set_addresses(msg: EmailMessage, name: str, mailboxes: list[Mailbox]) -> None:
    msg.set_raw(name, fold_address_field(name, [(mailbox.name, mailbox.email) for mailbox in mailboxes]))


def originator_fields(request: SendRequest) -> bytes:
    """The From and Reply-To lines exactly as :func:`build_message` writes them (same folding, same policy), so the
    accept path checks the bytes that will leave rather than the request's fields."""
    msg = EmailMessage(policy=SMTP_POLICY)
    _set_addresses(msg, "From", [request.from_])
    if request.reply_to:
        _set_addresses(msg, "Reply-To", request.reply_to)
    return render(msg)


def render(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP_POLICY)
