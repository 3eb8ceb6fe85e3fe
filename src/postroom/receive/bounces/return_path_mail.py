"""Mail to the return path: asynchronous bounces (DSNs) applied to the message they are about, never filed as mail.

Direct SMTP and the relay send with ``MAIL FROM:<bounces+msg_….tag@ReturnPathDomain>``
(:mod:`postroom.deliver.return_path`), so what comes back there is one of:

- **a DSN** (RFC 3464): each ``failed`` recipient block bounces that recipient as the SMTP path does for a 5xx -
  the recipient's status, a ``bounced`` event (webhooks follow) and, for a hard bounce, the suppression list - in one
  transaction with the event, so a retried invocation neither repeats nor loses it. ``delayed``, ``delivered`` and
  ``relayed`` blocks are informational.
- **an automatic reply** (out of office, vacation, "I have left the company"; RFC 3834 sends them to the envelope
  sender): it bounces nobody.
- anything else: a free-text bounce from a pre-RFC 3464 server, a DSN that names no recipient of the message or quotes
  another message's Message-ID.

Auto-replies and whatever could not be applied are **filed into the ``bounces@<ReturnPathDomain>`` mailbox** (with
the flag ``auto_reply`` or ``unprocessed_bounce``), where an operator reads them through the mailbox API, IMAP or
POP3, and counted in the inbound function's metrics. Filing rather than only logging, because a log line keeps
neither the bytes of the report nor anything a person can act on, and the mailbox already has retention, search and
expunge. A DSN that was applied completely is not kept: its substance is in the message record and its events.

Addresses are checked when a recipient is routed (at RCPT time on the local listener): a bounce address naming no
message Postroom has, or carrying a wrong signature, is refused like an unknown user, and never answered with a bounce
of its own (that would be backscatter to a forged sender).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from postroom.core.clock import isoformat, utcnow
from postroom.core.message_store import MessageNotFoundError
from postroom.core.status import RecipientStatus
from postroom.events.event_model import BounceType, EventType, bounce_type
from postroom.events.event_store import ConcurrentMessageUpdateError
from postroom.events.recorder import Pending, make_event
from postroom.receive.bounces.bounce_report import (
    ACTION_FAILED,
    BounceEvent,
    bounce_recipient,
    locate,
    matches_record,
    settle,
)
from postroom.receive.bounces.dsn_parse import DsnParseError, is_delivery_status_report, parse_dsn
from postroom.receive.routing import Rejection
from postroom.suppression.suppression_store import Suppression, SuppressionReason

if TYPE_CHECKING:
    from email.message import Message

    from postroom.core.message_record import MessageRecord, RecipientState
    from postroom.core.message_store import MessageStore
    from postroom.deliver.return_path import ReturnPath, VerpAddress
    from postroom.events.event_store import EventStore
    from postroom.events.recorder import EventRecorder
    from postroom.receive.bounces.dsn_parse import DeliveryStatusReport, DsnRecipient

__all__ = ["BounceOutcome", "BounceProcessor", "BounceRecipient", "Disposition", "is_auto_reply"]

logger = Logger(child=True)

_MAX_TRIES = 5  # re-reads when the record changed under us (the worker, or another report, saved it meanwhile)
REFUSED_STATUS = "5.1.1"  # the same answer for an unknown id and a bad signature: nothing to learn from the difference
# RFC 3834 §5 Auto-Submitted, plus what widespread responders write instead (Exchange, Gmail, Zimbra, cPanel).
_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-response")
_AUTO_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk", "list"})
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|absence|vacation|"
    r"away from (the )?office|r[ée]ponse automatique|respuesta autom[áa]tica|autosvar|ooo\b)",
    re.IGNORECASE,
)


class Disposition(StrEnum):
    APPLIED = "applied"  # a DSN whose every block was applied or informational: not kept
    AUTO_REPLY = "auto_reply"  # an automatic reply: nobody bounced; kept in the bounce mailbox
    UNPROCESSED = "unprocessed_bounce"  # not a readable DSN, or one that could not be applied: kept


@dataclass(frozen=True)
class BounceRecipient:
    """A routed recipient at the return path: the message its address names (None for the bare bounce address)."""

    recipient: str
    message_id: str | None


@dataclass
class BounceOutcome:
    recipient: str
    message_id: str | None
    disposition: Disposition
    events: list[BounceEvent]
    reason: str = ""

    @property
    def kept(self) -> bool:
        return self.disposition is not Disposition.APPLIED


def is_auto_reply(message: Message) -> bool:
    """An automatic response, by its own markers (RFC 3834 §5) or the subject conventions of common responders."""
    submitted = str(message.get("Auto-Submitted", "") or "").strip().lower()
    if submitted and submitted != "no":
        return True
    if any(message.get(name) is not None for name in _AUTO_HEADERS):
        return True
    precedence = str(message.get("Precedence", "") or message.get("X-Precedence", "") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return True
    return bool(_AUTO_SUBJECT.match(str(message.get("Subject", "") or "")))


class BounceProcessor:
    def __init__(
        self, *, return_path: ReturnPath, messages: MessageStore, recorder: EventRecorder, events: EventStore
    ) -> None:
        self.return_path = return_path
        self._messages = messages
        self._recorder = recorder
        self._events = events

    def route(self, recipient: str) -> BounceRecipient | Rejection | None:
        """None when ``recipient`` is not a bounce address; a rejection when it cannot be genuine."""
        verp = self.return_path.parse(recipient)
        if verp is None:
            return None
        refusal = self.return_path.refusal(verp) or self._unknown(verp)
        if refusal:
            logger.info("bounce address refused", extra={"recipient": verp.address, "reason": refusal})
            return Rejection(verp.address, REFUSED_STATUS, f"<{verp.address}>: no such bounce address", notify=False)
        return BounceRecipient(verp.address, verp.message_id)

    def _unknown(self, verp: VerpAddress) -> str:
        if not verp.message_id:
            return ""
        try:
            self._messages.get(verp.message_id)
        except MessageNotFoundError:
            return "no such message"
        return ""

    def process(self, target: BounceRecipient, message: Message, receipt_id: str) -> BounceOutcome:
        """Apply what arrived for ``target``; says whether it must be kept (filed into the bounce mailbox)."""
        if not is_delivery_status_report(message):
            if is_auto_reply(message):
                return self._outcome(target, Disposition.AUTO_REPLY, [], "an automatic reply", receipt_id)
            return self._outcome(target, Disposition.UNPROCESSED, [], "not a delivery status notification", receipt_id)
        try:
            report = parse_dsn(message)
        except DsnParseError as error:
            return self._outcome(target, Disposition.UNPROCESSED, [], str(error), receipt_id)
        events = self._apply(report, target.message_id)
        problems = [event.reason for event in events if not event.applied and not _harmless(event)]
        if problems:
            return self._outcome(
                target, Disposition.UNPROCESSED, events, "; ".join(dict.fromkeys(problems)), receipt_id
            )
        return self._outcome(target, Disposition.APPLIED, events, "", receipt_id)

    def _outcome(
        self, target: BounceRecipient, disposition: Disposition, events: list[BounceEvent], reason: str, receipt: str
    ) -> BounceOutcome:
        outcome = BounceOutcome(target.recipient, target.message_id, disposition, events, reason)
        logger.info(
            "bounce address mail handled",
            extra={
                "receipt": receipt,
                "message_id": target.message_id,
                "disposition": disposition.value,
                "bounced": sum(1 for event in events if event.applied),
                "reason": reason,
            },
        )
        return outcome

    # -- applying --------------------------------------------------------------------------------------------------

    def _apply(self, report: DeliveryStatusReport, verp_id: str | None) -> list[BounceEvent]:
        message_id, reason = locate(report, verp_id or None)
        if message_id is None:
            return [_unapplied(r, None, reason) for r in report.recipients]
        # One block at a time, each with its own read and transaction: a block's record change and its event are
        # written together, so a retry finds the block done instead of repeating or losing it.
        return [self._apply_block(report, block, message_id) for block in report.recipients]

    def _apply_block(self, report: DeliveryStatusReport, block: DsnRecipient, message_id: str) -> BounceEvent:
        for _ in range(_MAX_TRIES):
            try:
                record = self._messages.get(message_id)
            except MessageNotFoundError:
                return _unapplied(block, message_id, "no such message")
            reason = matches_record(report, record)
            if reason:
                return _unapplied(block, message_id, reason)
            at = isoformat(utcnow())
            event = bounce_recipient(record, block, at)
            if not event.applied:
                self._finish_follow_up(record, block, event)
                return event
            settle(record, at)
            try:
                self._recorder.record(record.tenant, [self._pending(record, block, event, at, also=True)])
            except ConcurrentMessageUpdateError:
                continue
            return event
        raise ConcurrentMessageUpdateError(message_id)

    def _finish_follow_up(self, record: MessageRecord, block: DsnRecipient, event: BounceEvent) -> None:
        """A block this DSN already applied (the invocation is a retry): its event is stored with the record change,
        but its suppression and webhooks may not have happened; recording it again does them, and only them."""
        state = _state(record, block)
        if state is None or state.status is not RecipientStatus.BOUNCED:
            return
        key = _key(record.id, state.address)
        if self._events.known(tenant=record.tenant, message_id=record.id, key=key):
            self._recorder.record(record.tenant, [self._pending(record, block, event, state.final_at or "")])

    def _pending(
        self, record: MessageRecord, block: DsnRecipient, event: BounceEvent, at: str, *, also: bool = False
    ) -> Pending:
        state = _state(record, block)
        address = state.address if state else block.address
        kind = bounce_type(block.status, block.smtp_code)
        suppress = None
        if kind is BounceType.HARD:
            suppress = Suppression(
                address=address,
                reason=SuppressionReason.HARD_BOUNCE,
                message_id=record.id,
                details=block.diagnostic_code or f"{block.status} reported in a delivery status notification",
            )
        details = {
            "bounce_type": kind.value,
            "classification": event.bounce_type.value if event.bounce_type else None,
            "enhanced_status": block.status,
            "smtp_code": block.smtp_code,
            "reply": block.diagnostic_code,
            "action": block.action,
            "remote_mta": block.remote_mta,
            "asynchronous": True,
        }
        made = make_event(
            record, EventType.BOUNCED, recipient=address, source="dsn", occurred_at=at or None, details=details
        )
        operations = [self._messages.save_operation(record)] if also else []
        return Pending(made, _key(record.id, address), suppress=suppress, also=operations)


def _key(message_id: str, address: str) -> str:
    return f"dsn:{message_id}:{address.lower()}"


def _state(record: MessageRecord, block: DsnRecipient) -> RecipientState | None:
    wanted = {block.final_recipient.lower(), block.address.lower()}
    return next((r for r in record.recipients if r.address.lower() in wanted), None)


def _harmless(event: BounceEvent) -> bool:
    """Not applied, and rightly so: an informational block (delayed, delivered, relayed), or a recipient whose outcome
    is already final (this DSN on a retried invocation, or a late one after the worker gave up)."""
    return event.action != ACTION_FAILED or event.reason.startswith("recipient is already ")


def _unapplied(block: DsnRecipient, message_id: str | None, reason: str) -> BounceEvent:
    return BounceEvent(
        recipient=block.address,
        action=block.action,
        status=block.status,
        bounce_type=block.bounce_type,
        diagnostic=block.diagnostic_code,
        message_id=message_id,
        applied=False,
        reason=reason,
    )
