"""The event a sender sees: in ``GET /v1/events``, in a message's timeline and in webhook deliveries."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from postroom.core.ids import ulid

EVENT_ID_PREFIX = "evt_"
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_EVENT_ID = re.compile(r"^evt_[0-9a-hjkmnp-tv-z]{26}$")


class EventType(StrEnum):
    SENT = "sent"  # handed to Amazon SES (the worker's SES call, or SES's own Send event)
    DELIVERED = "delivered"  # the recipient's server accepted it (an MX's 250, or SES's Delivery event)
    DEFERRED = "deferred"  # a transient failure; delivery goes on (SMTP 4xx, SES DeliveryDelay)
    BOUNCED = "bounced"  # a permanent failure; details.bounce_type is "hard" (bad address) or "soft"
    COMPLAINED = "complained"  # the recipient marked it as spam (SES complaint feedback)
    REJECTED = "rejected"  # SES refused to send it (virus found)
    RENDERING_FAILED = "rendering_failed"  # SES could not render it
    FAILED = "failed"  # Postroom gave up on transient failures
    SUPPRESSED = "suppressed"  # not sent: the address is on the suppression list
    OPENED = "opened"  # the tracking pixel was loaded
    CLICKED = "clicked"  # a tracked link was followed
    UNSUBSCRIBED = "unsubscribed"  # the recipient used the one-click unsubscribe link
    # The tenant's reputation breaker (postroom.events.reputation): its sends were paused, or an operator resumed
    # them. message_id is the message whose bounce or complaint tripped it; details.scope is "*" or a domain.
    SENDING_PAUSED = "sending_paused"
    SENDING_RESUMED = "sending_resumed"
    # A sending domain's deliveries moved to another path (postroom.deliver.failover); details: domain, to, reason.
    PATH_SWITCHED = "path_switched"


class BounceType(StrEnum):
    HARD = "hard"  # the address does not exist or cannot receive mail: it is suppressed
    SOFT = "soft"  # anything else (full mailbox, policy block, content rejected): the address stays usable


class Event(BaseModel):
    id: str = Field(description="evt_<ULID>: sorts by the time Postroom recorded the event.")
    type: EventType
    message_id: str
    recipient: str | None = Field(default=None, description="None when the event concerns no single recipient.")
    occurred_at: str = Field(description="When it happened, as the reporting side says.")
    recorded_at: str
    source: str = Field(
        description="Who reported it: ses, smtp, dsn (a bounce at the return path), postroom, tracking.",
    )
    ses_message_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    # The From domain of the message, known where the event is made from its record (make_event); not stored or
    # shown (an event read back has None). The reputation breaker counts per sending domain with it.
    _sender_domain: str | None = PrivateAttr(default=None)

    @property
    def sender_domain(self) -> str | None:
        return self._sender_domain

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def new_event_id(now_ms: int | None = None) -> str:
    return EVENT_ID_PREFIX + ulid(now_ms)


def is_event_id(text: str) -> bool:
    return bool(_EVENT_ID.match(text))


def event_time_ms(event_id: str) -> int:
    """The millisecond timestamp in an event id's ULID: its first 10 characters are bits 80-129 of the 130 the 26
    characters spell, and the 48-bit timestamp fills bits 80-127."""
    value = 0
    for char in event_id.removeprefix(EVENT_ID_PREFIX)[:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value


def boundary_id(now_ms: int) -> str:
    """The largest event id that can have been made at or before ``now_ms`` (for an exclusive upper bound)."""
    value = (now_ms << 80) | ((1 << 80) - 1)
    return EVENT_ID_PREFIX + "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


# RFC 3463 enhanced status codes that say the *address* is bad, so mailing it again cannot work: 5.1.x addressing
# failures (except 5.1.7/5.1.8, which are about the sender), 5.2.1 mailbox disabled, 5.4.1 recipient rejected by the
# receiving system (Microsoft's "access denied" for unknown users), 5.4.4 domain unroutable, 5.1.10 null MX.
# Everything else permanent (5.7.x policy blocks, 5.6.x content, 5.3.x system trouble, 5.2.2 mailbox full) is about
# the message or the sender: retrying another message may work, so it is a soft bounce and nothing is suppressed.
_SENDER_SIDE_ADDRESSING = frozenset({"5.1.7", "5.1.8"})
_HARD_EXACT = frozenset({"5.2.1", "5.4.1", "5.4.4"})
_HARD_WITHOUT_ENHANCED = frozenset({550, 551, 553})  # mailbox unavailable / not local / name not allowed


def bounce_type(enhanced_status: str | None, smtp_code: int | None = None) -> BounceType:
    if enhanced_status:
        if enhanced_status in _HARD_EXACT:
            return BounceType.HARD
        if enhanced_status.startswith("5.1.") and enhanced_status not in _SENDER_SIDE_ADDRESSING:
            return BounceType.HARD
        return BounceType.SOFT
    return BounceType.HARD if smtp_code in _HARD_WITHOUT_ENHANCED else BounceType.SOFT
