"""Adds tracking and unsubscribe links to the message the worker builds (a MessageDecorator registered in
postroom.wiring.worker_batch), before it is stored and sent - so every retry and both paths send the same bytes.

Only what was asked for changes: with ``track_clicks`` the HTML part's http(s) ``<a href>`` links go through signed
redirects (the text part is left alone: rewritten links there are long and opaque to a reader); with ``track_opens``
a 1x1 pixel is appended to the HTML part; with ``list_unsubscribe`` the List-Unsubscribe and List-Unsubscribe-Post
headers of RFC 8058 are added. Without any of them the message is not touched at all.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from postroom.tracking.tokens import LinkClaims, LinkKind

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import EmailMessage
    from email.policy import Policy

    from postroom.accept.models import SendRequest
    from postroom.core.message_record import MessageRecord
    from postroom.tracking.tokens import LinkSigner

# An <a> tag's href with an absolute http(s) URL, in double or single quotes. mailto:, tel:, anchors and relative
# links are left alone; so is anything that is not inside an <a ...> start tag.
_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'<>]+)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)

logger = Logger(child=True)


class _OneLine(str):
    """A header value written as one line. The email package folds long values at 78 characters, and a URL, which
    has no space to fold at, would become RFC 2047 encoded words - which no mailbox provider reads as a
    List-Unsubscribe URL (RFC 2369 §2). A line may be 998 characters (RFC 5322 §2.1.1); these are about 250."""

    name: str

    def __new__(cls, name: str, value: str) -> _OneLine:
        line = super().__new__(cls, value)
        line.name = name
        return line

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


class LinkDecorator:
    def __init__(self, signer: Callable[[], LinkSigner | None]) -> None:
        self._signer = signer  # resolved lazily: most messages need no key at all

    def decorate(self, record: MessageRecord, request: SendRequest, message: EmailMessage) -> None:
        if not (request.track_opens or request.track_clicks or request.list_unsubscribe):
            return
        signer = self._signer()
        if signer is None:
            # A stack without a public URL or signing key (never one built from template.yaml): the mail still goes,
            # untracked, rather than being held back by a feature that cannot work here.
            logger.warning("tracking/unsubscribe links asked for but not configured", extra={"message_id": record.id})
            return
        recipients = [r.address for r in record.recipients]
        recipient = recipients[0] if len(recipients) == 1 else None
        if request.list_unsubscribe and recipient:
            link = signer.url(LinkClaims(LinkKind.UNSUBSCRIBE, record.id, recipient))
            message.set_raw("List-Unsubscribe", _OneLine("List-Unsubscribe", f"<{link}>"))
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1
        if not (request.track_opens or request.track_clicks):
            return
        part = message.get_body(("html",))
        if part is None:
            return  # a text-only message has nothing to put a pixel or a rewritten link in
        content = part.get_content()
        if request.track_clicks:
            content = _ANCHOR_HREF.sub(
                lambda m: (
                    m.group(1)
                    + m.group(2)
                    + html.escape(
                        signer.url(LinkClaims(LinkKind.CLICK, record.id, recipient, html.unescape(m.group(3)))),
                        quote=True,
                    )
                    + m.group(2)
                ),
                content,
            )
        if request.track_opens:
            pixel = (
                f'<img src="{html.escape(signer.url(LinkClaims(LinkKind.OPEN, record.id, recipient)), quote=True)}" '
                'width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
            )
            ends = list(_BODY_END.finditer(content))
            at = ends[-1].start() if ends else len(content)
            content = content[:at] + pixel + content[at:]
        part.set_content(content, subtype="html", charset="utf-8", cte="quoted-printable")
        if part is not message:
            del part["MIME-Version"]  # set_content stamps it; RFC 2045 wants it only at the top
