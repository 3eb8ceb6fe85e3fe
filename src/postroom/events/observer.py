"""Events from the worker's own results: an AttemptObserver registered in postroom.wiring.worker_batch.

Direct SMTP reports its outcomes as events of the same kinds SES publishes: an MX's 250 is ``delivered``, a 4xx
``deferred``, a 5xx ``bounced`` (hard or soft by its enhanced status code, see :func:`bounce_type`); a hard bounce puts
the address on the tenant's suppression list. The SES path contributes ``sent`` (SES took the message), and the
suppression filter ``suppressed``. Observers must not raise: the attempt's outcome is already saved in the message
record. An event write that still fails after the store's retries is parked with its reason
(:mod:`postroom.events.parking`) and recorded later by the events function, so it is never dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from postroom.core.delivery_results import Outcome
from postroom.core.status import RecipientStatus
from postroom.events.event_model import BounceType, EventType, bounce_type
from postroom.events.recorder import Pending, make_event
from postroom.suppression.suppression_store import Suppression, SuppressionReason

if TYPE_CHECKING:
    from postroom.core.delivery_results import RecipientResult
    from postroom.core.message_record import MessageRecord
    from postroom.events.parking import EventParking
    from postroom.events.recorder import EventRecorder

logger = Logger(child=True)

_OUTCOME_EVENT = {
    Outcome.SENT: EventType.SENT,
    Outcome.DELIVERED: EventType.DELIVERED,
    Outcome.DEFERRED: EventType.DEFERRED,
    Outcome.BOUNCED: EventType.BOUNCED,
    Outcome.SUPPRESSED: EventType.SUPPRESSED,
}


def sent_key(message_id: str, recipient: str, ses_message_id: str | None) -> str:
    """Shared by the worker's ``sent`` and SES's own Send event, so the two reports of one fact make one event."""
    return f"sent:{message_id}:{recipient.lower()}:{ses_message_id or ''}"


class EventObserver:
    def __init__(self, recorder: EventRecorder, parking: EventParking | None = None) -> None:
        self._recorder = recorder
        self._parking = parking

    def attempted(self, record: MessageRecord, results: list[tuple[RecipientResult, str]]) -> None:
        pending: list[Pending] = []
        try:
            pending = [self._pending(record, result, agent) for result, agent in results]
            # When the worker gives up (with or without a last attempt's results), the recipients it failed get their
            # final event; the key makes a repeated report of the same failure one event.
            pending += self._failures(record)
            self._recorder.record(record.tenant, pending)
        except Exception as exc:  # noqa: BLE001 - an observer must not raise: whatever failed, the events are parked
            self._park(record, pending, f"{type(exc).__name__}: {exc}")

    def attempted_many(self, attempts: list[tuple[MessageRecord, list[tuple[RecipientResult, str]]]]) -> None:
        """A batch's attempts, each already saved by the worker with a conditional write: their events are new by
        construction, so they are written together (one webhook-subscription lookup and one batched write per tenant
        instead of a Query and a PutItem per message)."""
        by_tenant: dict[str, list[tuple[MessageRecord, list[Pending]]]] = {}
        for record, results in attempts:
            try:
                pending = [self._pending(record, result, agent, fresh=True) for result, agent in results]
                pending += self._failures(record)
            except Exception as exc:  # noqa: BLE001 - an observer must not raise
                self._park(record, [], f"{type(exc).__name__}: {exc}")
                continue
            by_tenant.setdefault(record.tenant, []).append((record, pending))
        for tenant, items in by_tenant.items():
            try:
                self._recorder.record(tenant, [p for _, pending in items for p in pending])
            except Exception as exc:  # noqa: BLE001 - an observer must not raise: whatever failed, the events are parked
                for record, pending in items:
                    self._park(record, pending, f"{type(exc).__name__}: {exc}")

    def _failures(self, record: MessageRecord) -> list[Pending]:
        return [
            Pending(
                make_event(
                    record,
                    EventType.FAILED,
                    recipient=r.address,
                    source="postroom",
                    occurred_at=r.final_at,
                    details={"reason": record.reason, "reply": r.reply, "attempts": r.attempts},
                ),
                key=f"failed:{record.id}:{r.address.lower()}",
            )
            for r in record.recipients
            if r.status is RecipientStatus.FAILED
        ]

    def _park(self, record: MessageRecord, pending: list[Pending], reason: str) -> None:
        if self._parking is not None and pending:
            try:
                self._parking.park(record.tenant, pending, reason)
                logger.warning(
                    "delivery events parked", extra={"message_id": record.id, "events": len(pending), "reason": reason}
                )
                return
            except Exception:
                logger.exception("could not park delivery events", extra={"message_id": record.id})
        # Last resort: the events themselves go to the log, so they can still be replayed from there.
        logger.error(
            "could not record delivery events",
            extra={
                "message_id": record.id,
                "reason": reason,
                "events": [p.event.model_dump(mode="json") for p in pending],
            },
        )

    def _pending(self, record: MessageRecord, result: RecipientResult, agent: str, *, fresh: bool = False) -> Pending:
        state = next(r for r in record.recipients if r.address.lower() == result.recipient.lower())
        type_ = _OUTCOME_EVENT[result.outcome]
        details: dict[str, object] = {
            "smtp_code": result.smtp_code,
            "enhanced_status": result.enhanced_status,
            "reply": result.reply or None,
            "mx_host": result.mx_host,
            "tls": result.tls,
            "tls_version": result.tls_version,
            "attempt": record.attempts,
            **result.extra,
        }
        suppress = None
        if type_ is EventType.DEFERRED:
            details["next_attempt_at"] = record.next_attempt_at
        if type_ is EventType.BOUNCED:
            kind = bounce_type(result.enhanced_status, result.smtp_code)
            details["bounce_type"] = kind.value
            if kind is BounceType.HARD:
                suppress = Suppression(
                    address=result.recipient,
                    reason=SuppressionReason.HARD_BOUNCE,
                    message_id=record.id,
                    details=result.reply or None,
                )
        event = make_event(
            record,
            type_,
            recipient=state.address,
            source=agent,
            occurred_at=state.last_attempt_at,
            ses_message_id=result.ses_message_id,
            details=details,
        )
        if type_ is EventType.SENT:
            # SES reports the same fact under the same key: never fresh, the conditional write makes the two one.
            key = sent_key(record.id, state.address, result.ses_message_id)
            fresh = False
        elif type_ is EventType.SUPPRESSED:
            key = f"suppressed:{record.id}:{state.address.lower()}"
        else:
            key = f"attempt:{record.id}:{record.attempts}:{state.address.lower()}"
        return Pending(event, key, suppress=suppress, fresh=fresh)
