"""What one delivery attempt says about each recipient.

Outcomes are per recipient (as in Postfix's qmgr): one message to three domains can be delivered to one, deferred at
another and bounced at the third. Agents return these; the worker turns them into status and retry decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from postroom.core.bounce_types import BounceType, classify_bounce


class Outcome(StrEnum):
    DELIVERED = "delivered"  # the receiving server (or SES) took responsibility for the message
    DEFERRED = "deferred"  # transient failure: try again later (SMTP 4xx, timeouts, throttling)
    BOUNCED = "bounced"  # permanent failure: SMTP 5xx, null MX, nonexistent domain, SES rejection
    SUPPRESSED = "suppressed"  # not sent at all: a filter (e.g. the suppression list) stopped this recipient
    SENT = "sent"  # handed to a service (SES) that reports delivery later, as an event


# RFC 3463 enhanced status code at the start of the reply text, e.g. "2.0.0 Ok: queued as 4F2A1".
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def parse_enhanced_status(text: str) -> str | None:
    match = _ENHANCED.match(text)
    return ".".join(match.groups()) if match else None


@dataclass(frozen=True, slots=True)
class SmtpReply:
    code: int
    text: str

    @property
    def enhanced_status(self) -> str | None:
        return parse_enhanced_status(self.text)

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


@dataclass(slots=True)
class RecipientResult:
    recipient: str
    outcome: Outcome
    reply: str = ""  # the server's reply or our own diagnostic, always human-readable
    smtp_code: int | None = None
    enhanced_status: str | None = None
    mx_host: str | None = None  # the host that gave the final answer for this recipient
    tls: bool | None = None  # whether the session that carried this recipient was encrypted
    tls_version: str | None = None
    ses_message_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    tls_verified: bool | None = None  # the server's certificate verified for mx_host; None when there was no TLS
    tls_policy: str | None = None  # the TLS policy applied, e.g. "opportunistic", "verify", "mta-sts"
    bounce_type: BounceType | None = None  # for deferred and bounced results; classified from the reply if not given

    def __post_init__(self) -> None:
        if self.bounce_type is None and self.outcome in (Outcome.DEFERRED, Outcome.BOUNCED):
            self.bounce_type = classify_bounce(self.smtp_code, self.enhanced_status, self.reply)

    @classmethod
    def from_reply(cls, recipient: str, outcome: Outcome, reply: SmtpReply, **kwargs: object) -> RecipientResult:
        return cls(
            recipient=recipient,
            outcome=outcome,
            reply=str(reply),
            smtp_code=reply.code,
            enhanced_status=reply.enhanced_status,
            **kwargs,  # type: ignore[arg-type]
        )
