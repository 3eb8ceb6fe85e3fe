"""Oversize-safe attachments: where a message is larger than the recipient's MX takes (its RFC 1870 ``SIZE``) or than
a configured per-domain limit, its largest attachments become expiring download links instead of a bounce.

:class:`LinkingSmtpAgent` wraps the (DKIM-signing) SMTP agent, so the signature covers the message as rewritten. Per
recipient domain it takes the lower of the configured limit and the MX's advertised SIZE (asked only for messages
above ``PROBE_ABOVE``; the probe's session is the one the delivery then uses), and while the message is over it, moves
the largest remaining attachment to S3 and replaces it by a note in the text and HTML parts with a presigned link. The
results say which files went as links (``attachments_linked``), so the record and the events report it.

    Object  s3://<bucket>/links/<sha256 of the file>/<filename>   the file; links to it expire after the link time

A link signed with a Lambda role's temporary credentials stops working when those expire (hours), whatever its own
expiry: a deployment that wants week-long links signs with a long-lived identity (see README).
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from typing import TYPE_CHECKING, Any

from postroom.core.clock import isoformat, utcnow

if TYPE_CHECKING:
    from postroom.core.delivery_results import RecipientResult
    from postroom.deliver.deliverer import SesAgent, SmtpAgent

__all__ = ["LinkStore", "LinkingSesAgent", "LinkingSmtpAgent", "replace_largest"]

PROBE_ABOVE = 1024 * 1024  # below this, no MX's SIZE is asked: every MX on the internet takes a megabyte
LINKED_KEY = "attachments_linked"


@dataclass(frozen=True)
class Linked:
    filename: str
    size: int
    url: str


class LinkStore:
    """The files behind the links, and the presigned GET URLs to them."""

    def __init__(self, s3: Any, bucket: str, *, expires_seconds: int) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.expires_seconds = expires_seconds

    def link(self, filename: str, content_type: str, data: bytes) -> str:
        key = f"links/{hashlib.sha256(data).hexdigest()}/{filename}"
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        url: str = self._s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=self.expires_seconds,
        )
        return url


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def replace_largest(
    message: bytes, limit: int, link: Callable[[str, str, bytes], str], expires_seconds: int
) -> tuple[bytes, list[Linked]]:
    """The message with its largest attachments replaced by links until it fits ``limit`` (or none is left)."""
    parsed = message_from_bytes(message, _class=EmailMessage, policy=SMTP)
    assert isinstance(parsed, EmailMessage)
    parts = [
        (parent, part)
        for parent in parsed.walk()
        if parent.is_multipart()
        for part in parent.iter_parts()
        if isinstance(part, EmailMessage) and part.is_attachment()
    ]
    parts.sort(key=lambda pair: len(pair[1].get_payload()), reverse=True)  # the encoded size orders them alike
    linked: list[Linked] = []
    originals = _bodies(parsed)
    rendered = message
    until = isoformat(utcnow() + timedelta(seconds=expires_seconds))
    for parent, part in parts:
        if len(rendered) <= limit:
            break
        decoded = part.get_payload(decode=True)
        data = decoded if isinstance(decoded, bytes) else b""
        filename = part.get_filename() or "attachment"
        url = link(filename, part.get_content_type(), data)
        payload = parent.get_payload()
        assert isinstance(payload, list)
        payload.remove(part)
        linked.append(Linked(filename, len(data), url))
        _note(parsed, originals, linked, until)
        rendered = parsed.as_bytes(policy=SMTP)
    return rendered, linked


def _bodies(message: EmailMessage) -> dict[str, str]:
    found = {}
    for subtype in ("plain", "html"):
        body = message.get_body((subtype,))
        if isinstance(body, EmailMessage):
            found[subtype] = body.get_content()
    return found


def _note(message: EmailMessage, originals: dict[str, str], linked: list[Linked], until: str) -> None:
    """Say in the text (and HTML) body which files were too large and where to fetch them, rewritten from the
    original bodies each time so that the note lists every link once."""
    lines = [f"- {item.filename} ({_megabytes(item.size)}): {item.url}" for item in linked]
    lead = "This message was too large for the recipient's mail server, so these attachments are links"
    text_note = f"\n\n--\n{lead} (valid until {until}):\n" + "\n".join(lines) + "\n"
    items = "".join(
        f'<li><a href="{html.escape(item.url)}">{html.escape(item.filename)}</a> ({_megabytes(item.size)})</li>'
        for item in linked
    )
    html_note = f"<hr><p>{lead} (valid until {until}):</p><ul>{items}</ul>"
    for subtype, note in (("plain", text_note), ("html", html_note)):
        body = message.get_body((subtype,))
        if not isinstance(body, EmailMessage) or subtype not in originals:
            continue
        content = originals[subtype]
        closing = content.lower().rfind("</body>") if subtype == "html" else -1
        content = content[:closing] + note + content[closing:] if closing >= 0 else content + note
        body.set_content(content, subtype=subtype, cte="quoted-printable")


def _shrunk(
    message: bytes, limit: int, links: LinkStore
) -> tuple[bytes, Callable[[list[RecipientResult]], list[RecipientResult]]]:
    """The message fitted under ``limit`` (less headroom for the DKIM signature and the MX's trace fields), and what
    marks the results with the files that went as links."""
    rewritten, linked = replace_largest(message, limit - 4096, links.link, links.expires_seconds)

    def mark(results: list[RecipientResult]) -> list[RecipientResult]:
        if linked:
            summary = "; ".join(f"{item.filename} ({item.size} bytes)" for item in linked)
            for result in results:
                result.extra[LINKED_KEY] = summary
        return results

    return rewritten, mark


class LinkingSesAgent:
    """SesAgent: a message over SES's size limit has its largest attachments made links before SES gets it."""

    def __init__(self, inner: SesAgent, links: LinkStore, *, limit: int) -> None:
        self._inner = inner
        self._links = links
        self._limit = limit

    def deliver(self, mail_from: str, recipients: list[str], message: bytes) -> list[RecipientResult]:
        if len(message) <= self._limit:
            return self._inner.deliver(mail_from, recipients, message)
        rewritten, mark = _shrunk(message, self._limit, self._links)
        return mark(self._inner.deliver(mail_from, recipients, rewritten))


class LinkingSmtpAgent:
    """SmtpAgent: hands each domain's delivery to ``inner``, first shrinking a message that is too large for it."""

    def __init__(
        self,
        inner: SmtpAgent,
        links: LinkStore,
        *,
        limits: dict[str, int],
        size_limit: Callable[[str], int | None] | None,
    ) -> None:
        self._inner = inner
        self._links = links
        self._limits = limits
        self._size_limit = size_limit

    def limit_for(self, domain: str, size: int) -> int | None:
        candidates = [self._limits[key] for key in (domain.lower(), "*") if key in self._limits]
        if self._size_limit is not None and size > PROBE_ABOVE:
            advertised = self._size_limit(domain)
            if advertised is not None:
                candidates.append(advertised)
        return min(candidates) if candidates else None

    def deliver(self, domain: str, mail_from: str, recipients: list[str], message: bytes) -> list[RecipientResult]:
        limit = self.limit_for(domain, len(message))
        if limit is None or len(message) <= limit:
            return self._inner.deliver(domain, mail_from, recipients, message)
        rewritten, mark = _shrunk(message, limit, self._links)
        return mark(self._inner.deliver(domain, mail_from, recipients, rewritten))
