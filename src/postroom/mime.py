"""Build the RFC 5322 message from a validated send request, with the email stdlib.

Structure, from the simplest that fits:
    text/plain                                      text only
    multipart/alternative [text, html]              html (a text part is generated when none was given)
    multipart/alternative [text, related[html, inline images…]]   html with inline images (content_id)
    multipart/mixed [<one of the above>, attachments…]            with attachments

The output is 7-bit clean (quoted-printable or base64 wherever a part is not plain short-lined ASCII), lines end in
CRLF and never exceed 998 characters (RFC 5322 §2.1.1): any MTA, and SES, takes it unchanged. Bcc is never written.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from postroom.htmltext import html_to_text
from postroom.ids import message_id_header  # re-exported: it used to live here
from postroom.models import SendRequest

# policy.SMTP: CRLF line endings, RFC 2047 encoded words for non-ASCII headers, folding at 78 characters.
__all__ = ["SMTP_POLICY", "build_message", "message_id_header", "render"]

SMTP_POLICY = policy.SMTP.clone(max_line_length=78)
_MAX_LINE = 998


def _text_cte(content: str) -> str:
    """7bit when every line is short ASCII; quoted-printable otherwise (readable, and safe for any transport)."""
    if content.isascii() and all(len(line) <= _MAX_LINE for line in content.splitlines()):
        return "7bit"
    return "quoted-printable"


def _add_text(part: EmailMessage, content: str, subtype: str) -> None:
    part.set_content(content, subtype=subtype, charset="utf-8", cte=_text_cte(content))


def build_message(request: SendRequest, *, message_id: str, date: datetime) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = request.from_.to_address().header_value()
    if request.to:
        msg["To"] = [m.to_address().header_value() for m in request.to]
    if request.cc:
        msg["Cc"] = [m.to_address().header_value() for m in request.cc]
    if request.reply_to:
        msg["Reply-To"] = [m.to_address().header_value() for m in request.reply_to]
    msg["Subject"] = request.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    for name, value in request.headers.items():
        msg[name] = value

    inline = [a for a in request.attachments if a.content_id]
    regular = [a for a in request.attachments if not a.content_id]

    if request.html is None:
        _add_text(msg, request.text or "", "plain")
    else:
        _add_text(msg, request.text if request.text is not None else html_to_text(request.html), "plain")
        msg.add_alternative("")  # placeholder part, filled below so its encoding can be chosen explicitly
        html_part = msg.get_payload()[1]
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


def render(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP_POLICY)
