"""The receiving server's own id for a message, read from its reply to the end of DATA.

RFC 5321 leaves the text of a 250 reply free, but most MTAs name the queue id they filed the message under; with it
an operator can ask the receiving side's postmaster about one exact message. The formats below are the common MTAs'.
"""

from __future__ import annotations

import re

__all__ = ["queue_id"]

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bqueued as\s+(?P<id>[^\s,;\]]+)", re.IGNORECASE),  # Postfix, aiosmtpd sinks, many appliances
    re.compile(r"\bOK\s+id=(?P<id>[^\s,;\]]+)", re.IGNORECASE),  # Exim
    re.compile(r"\[InternalId=(?P<id>\d+)"),  # Microsoft 365 / Exchange Online
    re.compile(r"\bOK\s+\d+\s+(?P<id>\S+)\s+-\s+gsmtp\b"),  # Gmail: "OK  1700000000 a1si123.45 - gsmtp"
    re.compile(r"\b(?P<id>[A-Za-z0-9]{8,20})\s+Message accepted for delivery", re.IGNORECASE),  # Sendmail
    re.compile(r"\bok\s+\d+\s+qp\s+(?P<id>\d+)", re.IGNORECASE),  # qmail
)
_MAX_LENGTH = 100  # an id longer than this is prose that happened to match, not an id


def queue_id(reply: str) -> str | None:
    """The queue id in an SMTP reply's text (``"250 2.0.0 Ok: queued as 4F2A1"`` → ``"4F2A1"``), if it names one."""
    for pattern in _PATTERNS:
        match = pattern.search(reply)
        if match:
            value = match.group("id").rstrip(".")
            return value if 0 < len(value) <= _MAX_LENGTH else None
    return None
