"""Delivery state: an Enum per message and per recipient, with the transitions that are allowed.

A message's status is derived from its recipients' statuses, never set independently, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class RecipientStatus(StrEnum):
    PENDING = "pending"  # not attempted yet
    DEFERRED = "deferred"  # a transient failure; will be retried
    DELIVERED = "delivered"  # the receiving server or SES accepted it
    BOUNCED = "bounced"  # permanent failure with the server's reply
    FAILED = "failed"  # gave up on transient failures (too many attempts / too old)
    SUPPRESSED = "suppressed"  # never sent: the address is on the suppression list (or another filter stopped it)
    # Handed to Amazon SES, which has not reported delivery yet. Final for the worker (it must not send again); SES's
    # Delivery or Bounce event moves it on (postroom.events).
    SENT = "sent"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_RECIPIENT


_FINAL_RECIPIENT = frozenset(
    {
        RecipientStatus.DELIVERED,
        RecipientStatus.BOUNCED,
        RecipientStatus.FAILED,
        RecipientStatus.SUPPRESSED,
        RecipientStatus.SENT,
    }
)


class MessageStatus(StrEnum):
    QUEUED = "queued"  # accepted, stored, waiting in SQS
    SENDING = "sending"  # a worker is on it
    DEFERRED = "deferred"  # some recipients wait for a retry
    DELIVERED = "delivered"  # every recipient delivered
    PARTIALLY_DELIVERED = "partially_delivered"  # all final, some delivered, some bounced or failed
    BOUNCED = "bounced"  # all final, none delivered, at least one bounced
    FAILED = "failed"  # all final, none delivered, none bounced: gave up (or could not be processed at all)
    SUPPRESSED = "suppressed"  # every recipient was suppressed: nothing was sent
    SCHEDULED = "scheduled"  # accepted with a future send_at; an EventBridge Scheduler schedule will queue it
    CANCELLED = "cancelled"  # cancelled by the sender while still scheduled: never sent
    SENT = "sent"  # handed to SES for every recipient it could reach; waiting for SES's delivery reports

    @property
    def is_final(self) -> bool:
        return self in _FINAL_MESSAGE


_FINAL_MESSAGE = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.PARTIALLY_DELIVERED,
        MessageStatus.BOUNCED,
        MessageStatus.FAILED,
        MessageStatus.SUPPRESSED,
        MessageStatus.CANCELLED,
        MessageStatus.SENT,
    }
)

_ALLOWED: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.QUEUED: frozenset({MessageStatus.SENDING, MessageStatus.FAILED}),
    # SENDING → SENDING: a worker crashed mid-attempt and SQS redelivered the message.
    MessageStatus.SENDING: frozenset(MessageStatus)
    - {MessageStatus.QUEUED, MessageStatus.SCHEDULED, MessageStatus.CANCELLED},
    MessageStatus.DEFERRED: frozenset({MessageStatus.SENDING, MessageStatus.FAILED}),
    # The schedule fired (sending), the sender cancelled it, or it could not be scheduled (failed). Rescheduling keeps
    # the status and changes send_at.
    MessageStatus.SCHEDULED: frozenset({MessageStatus.SENDING, MessageStatus.CANCELLED, MessageStatus.FAILED}),
    # After the worker is done, delivery reports (SES Delivery/Bounce events, late bounces) can still change the
    # outcome; they never send the message back to the worker.
    MessageStatus.SENT: frozenset(
        {
            MessageStatus.DELIVERED,
            MessageStatus.PARTIALLY_DELIVERED,
            MessageStatus.BOUNCED,
            MessageStatus.FAILED,
        }
    ),
    MessageStatus.DELIVERED: frozenset({MessageStatus.PARTIALLY_DELIVERED, MessageStatus.BOUNCED}),
    MessageStatus.PARTIALLY_DELIVERED: frozenset(
        {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.BOUNCED, MessageStatus.FAILED}
    ),
}


# An asynchronous bounce (a DSN, RFC 3464) arrives after the SMTP dialogue: for a message that had already settled, or
# while it waits for a retry. The recipient it names becomes bounced and the message's status is derived again.
_ASYNC_BOUNCE: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.DELIVERED: frozenset({MessageStatus.PARTIALLY_DELIVERED, MessageStatus.BOUNCED}),
    MessageStatus.PARTIALLY_DELIVERED: frozenset({MessageStatus.BOUNCED}),
    MessageStatus.DEFERRED: frozenset({MessageStatus.PARTIALLY_DELIVERED, MessageStatus.BOUNCED}),
}
for _old, _new in _ASYNC_BOUNCE.items():
    _ALLOWED[_old] = _ALLOWED.get(_old, frozenset()) | _new


class InvalidTransitionError(RuntimeError):
    pass


def check_transition(old: MessageStatus, new: MessageStatus) -> None:
    if new not in _ALLOWED.get(old, frozenset()):
        raise InvalidTransitionError(f"message status cannot go from {old} to {new}")


def aggregate(statuses: Iterable[RecipientStatus]) -> MessageStatus:
    """The message's status from its recipients' (after at least one attempt)."""
    values = list(statuses)
    if any(not s.is_final for s in values):
        return MessageStatus.DEFERRED
    if RecipientStatus.SENT in values and all(
        s in (RecipientStatus.SENT, RecipientStatus.DELIVERED, RecipientStatus.SUPPRESSED) for s in values
    ):
        return MessageStatus.SENT  # nothing went wrong so far; SES's reports decide the rest
    # From here on a recipient SES accepted counts as reached, as the SMTP path counts an MX's 250.
    values = [RecipientStatus.DELIVERED if s is RecipientStatus.SENT else s for s in values]
    delivered = sum(s is RecipientStatus.DELIVERED for s in values)
    suppressed = sum(s is RecipientStatus.SUPPRESSED for s in values)
    if delivered and delivered + suppressed == len(values):
        # Suppressed recipients were never meant to get mail; the message reached everyone it could.
        return MessageStatus.DELIVERED if not suppressed else MessageStatus.PARTIALLY_DELIVERED
    if delivered:
        return MessageStatus.PARTIALLY_DELIVERED
    if suppressed == len(values):
        return MessageStatus.SUPPRESSED
    if any(s is RecipientStatus.BOUNCED for s in values):
        return MessageStatus.BOUNCED
    return MessageStatus.FAILED
