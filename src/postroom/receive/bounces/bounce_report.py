"""Apply an asynchronous bounce (a parsed DSN) to the Postroom message it is about.

The inbound path (#4) calls :func:`handle_bounce` with the raw bytes of a message that arrived at a bounce address;
it parses the DSN (:mod:`postroom.receive.bounces.dsn_parse`), finds the record by the original Message-ID (whose id
part
is the Postroom id without ``msg_``, see :func:`postroom.accept.mime_build.message_id_header`) and marks each failed
recipient
bounced. :func:`apply_report` does the same for an already parsed report, :func:`bounce_recipient` for one record.

A report is only applied when the Message-ID it quotes is exactly the one Postroom wrote into that message, so a
forged or misdirected DSN naming some id cannot bounce another tenant's recipients. A DSN that arrived at a message's
VERP bounce address (``verp_id``, :mod:`postroom.deliver.return_path`) is about that message: a Message-ID it
quotes must be that message's too, and one that quotes none (many MTAs return nothing of the original) is tied to the
message by the address alone, whose signature the inbound path has checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from postroom.accept.mime_build import postroom_id_from_message_id
from postroom.core.clock import isoformat, utcnow
from postroom.core.message_store import ConcurrentUpdateError, MessageNotFoundError
from postroom.core.status import MessageStatus, RecipientStatus
from postroom.receive.bounces.dsn_parse import DeliveryStatusReport, DsnRecipient, parse_dsn

if TYPE_CHECKING:
    from datetime import datetime

    from postroom.core.bounce_types import BounceType
    from postroom.core.message_record import MessageRecord
    from postroom.core.message_store import MessageStore

__all__ = ["BounceEvent", "apply_report", "bounce_recipient", "handle_bounce", "locate", "matches_record", "settle"]

logger = Logger(child=True)

SAVE_ATTEMPTS = 3  # optimistic locking: re-read and re-apply when the worker saved the record in between
ACTION_FAILED = "failed"  # RFC 3464 §2.3.3; "delayed", "delivered", "relayed" and "expanded" are informational
# A recipient the worker still retries, or one that was delivered and then bounced further down the line.
_BOUNCEABLE = frozenset({RecipientStatus.PENDING, RecipientStatus.DEFERRED, RecipientStatus.DELIVERED})
# The worker owns a message in these states; it derives the message status itself when its attempt ends.
_WORKER_OWNED = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})


@dataclass(frozen=True)
class BounceEvent:
    """What one DSN recipient block did: ``applied`` or the reason it was not."""

    recipient: str
    action: str
    status: str
    bounce_type: BounceType | None
    diagnostic: str | None
    message_id: str | None  # the Postroom id, when the report could be tied to a message
    applied: bool
    reason: str = ""


def handle_bounce(
    raw: bytes, store: MessageStore, now: datetime | None = None, *, verp_id: str | None = None
) -> list[BounceEvent]:
    """Parse a DSN and apply it. Raises :class:`~postroom.receive.bounces.dsn_parse.DsnParseError` for anything else."""
    return apply_report(parse_dsn(raw), store, now, verp_id=verp_id)


def locate(report: DeliveryStatusReport, verp_id: str | None = None) -> tuple[str | None, str]:
    """The Postroom id the report is about, or None and the reason it cannot be told."""
    original = report.original_message_id
    quoted = postroom_id_from_message_id(original) if original else None
    if verp_id is not None:
        if original is not None and quoted != verp_id:
            # The address and the quoted message disagree: one of them is not what Postroom sent.
            return None, f"{original} is not the Message-ID of {verp_id}, whose bounce address it was sent to"
        return verp_id, ""
    if original is None or quoted is None:
        return None, "the report quotes no Message-ID" if not original else f"{original} is not a Postroom Message-ID"
    return quoted, ""


def matches_record(report: DeliveryStatusReport, record: MessageRecord) -> str:
    """Why the report is not about ``record`` ("" when it is): a quoted Message-ID must be exactly the one written."""
    original = report.original_message_id
    if original is not None and record.message_id_header.lower() != original.lower():
        return f"{original} does not match the message's Message-ID"
    return ""


def apply_report(
    report: DeliveryStatusReport, store: MessageStore, now: datetime | None = None, *, verp_id: str | None = None
) -> list[BounceEvent]:
    at = isoformat(now or utcnow())
    message_id, reason = locate(report, verp_id)
    if message_id is None:
        return [_event(r, None, applied=False, reason=reason) for r in report.recipients]
    for _ in range(SAVE_ATTEMPTS):
        try:
            record = store.get(message_id)
        except MessageNotFoundError:
            return [_event(r, message_id, applied=False, reason="no such message") for r in report.recipients]
        reason = matches_record(report, record)
        if reason:
            return [_event(r, message_id, applied=False, reason=reason) for r in report.recipients]
        events = [bounce_recipient(record, recipient, at) for recipient in report.recipients]
        if not any(event.applied for event in events):
            return events
        settle(record, at)
        try:
            store.save(record)
        except ConcurrentUpdateError:
            continue
        for event in events:
            if event.applied:
                logger.info(
                    "asynchronous bounce applied",
                    extra={"message_id": message_id, "status": event.status, "bounce_type": event.bounce_type},
                )
        return events
    raise ConcurrentUpdateError(message_id)


def settle(record: MessageRecord, at: str) -> None:
    """After bouncing recipients in memory: derive the message status, unless the worker owns the message now."""
    if record.status not in _WORKER_OWNED:
        record.settle()
    record.updated_at = at


def bounce_recipient(record: MessageRecord, recipient: DsnRecipient, at: str) -> BounceEvent:
    """Mark the recipient a DSN block names as bounced, if the block reports a failure (in memory; no save)."""
    if recipient.action != ACTION_FAILED:
        return _event(recipient, record.id, applied=False, reason=f"action {recipient.action} is informational")
    wanted = {recipient.final_recipient.lower(), recipient.address.lower()}
    state = next((r for r in record.recipients if r.address.lower() in wanted), None)
    if state is None:
        return _event(recipient, record.id, applied=False, reason="not a recipient of this message")
    if state.status not in _BOUNCEABLE:
        return _event(recipient, record.id, applied=False, reason=f"recipient is already {state.status.value}")
    state.status = RecipientStatus.BOUNCED
    state.smtp_code = recipient.smtp_code
    state.enhanced_status = recipient.status
    state.reply = recipient.diagnostic_code or f"{recipient.status} reported in a delivery status notification"
    state.mx_host = recipient.remote_mta or state.mx_host
    state.bounce_type = recipient.bounce_type
    state.final_at = at
    return _event(recipient, record.id, applied=True)


def _event(recipient: DsnRecipient, message_id: str | None, *, applied: bool, reason: str = "") -> BounceEvent:
    return BounceEvent(
        recipient=recipient.address,
        action=recipient.action,
        status=recipient.status,
        bounce_type=recipient.bounce_type,
        diagnostic=recipient.diagnostic_code,
        message_id=message_id,
        applied=applied,
        reason=reason,
    )
