"""Time-sortable identifiers (ULID layout: 48-bit milliseconds + 80 random bits, Crockford base32).

Sortable ids keep DynamoDB listings and the event feed in creation order without a second timestamp index.
"""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid(now_ms: int | None = None) -> str:
    value = ((now_ms if now_ms is not None else time.time_ns() // 1_000_000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def message_id() -> str:
    return f"msg_{ulid()}"


def message_id_header(message_id: str, domain: str) -> str:
    """The RFC 5322 Message-ID for a message. The id part is Postroom's own id, so a Message-ID seen in a bounce or a
    reply maps straight back to the record. (Here, not in postroom.accept.mime_build, so the send API does not import
    the email
    package's header machinery at start-up.)"""
    return f"<{message_id.removeprefix('msg_')}@{domain}>"
