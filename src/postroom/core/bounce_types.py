"""Bounce classification: what kind of failure an SMTP reply (or a DSN's status) reports.

The enhanced status code (RFC 3463) decides where there is one; its *subject* digit says what failed (§3.1):
X.7.z is "security or policy" and X.2.2 is "mailbox full" whatever the class, otherwise the class digit decides
between a permanent failure (5) and a transient one (4). Servers that answer without an enhanced code (or with the
catch-all X.0.0) are classified by the words of their reply, which is how large mailbox providers describe quota and
reputation refusals in practice.

A pure module: no I/O, no imports from the rest of Postroom, so results, records and the DSN parser can all use it.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["BounceType", "classify_bounce", "parse_status"]


class BounceType(StrEnum):
    HARD = "hard"  # permanent failure not explained by policy or quota: unknown user, bad domain, null MX, …
    SOFT = "soft"  # transient failure: try again later (greylisting aside, which is policy)
    POLICY = "policy"  # refused because of who sent it or what it looks like: spam, reputation, DMARC, TLS policy
    MAILBOX_FULL = "mailbox_full"  # the recipient's mailbox is over quota (transient or permanent alike)


# RFC 3463 §2: class "." subject "." detail; class 2 success, 4 persistent transient, 5 permanent.
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")

SUBJECT_MAILBOX = 2  # RFC 3463 §3.3: mailbox status
DETAIL_MAILBOX_FULL = 2  # RFC 3463 §3.3: X.2.2 "mailbox full"
SUBJECT_POLICY = 7  # RFC 3463 §3.8: security or policy status

# Reply wording for servers without a specific enhanced code. Kept short and specific: a wrong guess here only
# changes the label, never the outcome (the class of the reply still decides deferral versus bounce).
_QUOTA_WORDS = (
    "mailbox full",
    "mailbox is full",
    "over quota",
    "overquota",
    "quota exceeded",
    "exceeds quota",
    "exceeded storage allocation",  # RFC 5321 §4.2.2, the text of 552
    "mailbox size limit",
)
_POLICY_WORDS = (
    "spam",
    "blocked",
    "blacklist",
    "blocklist",
    "denylist",
    "reputation",
    "policy",
    "dmarc",
    "spf",
    "dkim",
    "spamhaus",
    "not authorized",
    "unauthenticated",
    "greylist",
    "graylist",
)


def parse_status(text: str | None) -> tuple[int, int, int] | None:
    """``"5.1.1 …"`` → ``(5, 1, 1)``; None when the text does not start with an enhanced status code."""
    if not text:
        return None
    match = _STATUS.match(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def classify_bounce(smtp_code: int | None, enhanced_status: str | None, text: str = "") -> BounceType | None:
    """The kind of failure, or None for a success (class 2) or when neither a code nor a status is known."""
    status = parse_status(enhanced_status)
    if status is not None:
        klass = status[0]
    elif smtp_code is not None and 200 <= smtp_code < 600:
        klass = smtp_code // 100
    else:
        return None
    if klass < 4:
        return None
    if status is not None and status[1] == SUBJECT_POLICY:
        return BounceType.POLICY
    if status is not None and status[1:] == (SUBJECT_MAILBOX, DETAIL_MAILBOX_FULL):
        return BounceType.MAILBOX_FULL
    if status is None or status[1:] == (0, 0):
        # No specific code: the reply's wording is all there is to go on.
        lowered = text.lower()
        if any(words in lowered for words in _QUOTA_WORDS):
            return BounceType.MAILBOX_FULL
        if any(re.search(rf"\b{re.escape(words)}", lowered) for words in _POLICY_WORDS):
            return BounceType.POLICY
    return BounceType.HARD if klass == 5 else BounceType.SOFT
