"""SES event publishing (and the older identity notifications) as Postroom events.

What arrives on the events queue is SES's JSON wrapped by SNS (``{"Type": "Notification", "Message": ...}``, where
``Message`` is a JSON string on AWS and an object in moto), or bare (SNS raw message delivery), or inside an
EventBridge event (``detail``). Each SES document becomes one report per recipient concerned.

The Postroom message is found through the Message-ID header SES echoes back in ``mail.commonHeaders``: Postroom writes
``<ULID@sending domain>``, and the ULID is the message id's. The record must already carry the SES message id for that
recipient (the worker saves it when SES accepts the message); when it does not yet, the report waits and is retried,
because SES can publish before the worker's save lands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.core.clock import isoformat, now_iso, parse_iso
from postroom.core.message_store import MessageNotFoundError
from postroom.core.status import InvalidTransitionError, RecipientStatus
from postroom.events.event_model import BounceType, EventType
from postroom.events.event_store import ConcurrentMessageUpdateError
from postroom.events.observer import sent_key
from postroom.events.recorder import Pending, make_event
from postroom.suppression.suppression_store import Suppression, SuppressionReason

if TYPE_CHECKING:
    from postroom.core.message_record import MessageRecord, RecipientState
    from postroom.core.message_store import MessageStore
    from postroom.events.recorder import EventRecorder

logger = Logger(child=True)

_POSTROOM_MESSAGE_ID = re.compile(r"^\s*<([0-9a-hjkmnp-tv-z]{26})@[^>]+>\s*$")
_SMTP_CODE = re.compile(r"\b([245]\d\d)\b")
_MAX_TRIES = 5  # re-reads when the message changed under us (another report for it landed at the same time)


class NotReadyError(Exception):
    """The message record does not show this SES send yet; retry the report later."""


@dataclass
class SesReport:
    type: EventType
    ses_message_id: str
    postroom_id: str | None
    recipient: str | None
    occurred_at: str
    key: str
    details: dict[str, Any] = field(default_factory=dict)
    suppress: SuppressionReason | None = None


def documents(body: str) -> list[dict[str, Any]]:
    """The SES documents in one SQS message body."""
    data = json.loads(body)
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        message = data["Message"]
        data = json.loads(message) if isinstance(message, str) else message
    elif isinstance(data, dict) and data.get("source") == "aws.ses" and isinstance(data.get("detail"), dict):
        data = data["detail"]
    if not isinstance(data, dict) or not isinstance(data.get("mail"), dict):
        raise ValueError("not an SES event or notification")
    return [data]


def _time(text: Any) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return isoformat(parse_iso(text))
    except ValueError:
        return text


def _postroom_id(mail: dict[str, Any]) -> str | None:
    candidates = [(mail.get("commonHeaders") or {}).get("messageId")]
    candidates += [h.get("value") for h in mail.get("headers") or [] if str(h.get("name", "")).lower() == "message-id"]
    for candidate in candidates:
        match = _POSTROOM_MESSAGE_ID.match(candidate or "")
        if match:
            return f"msg_{match.group(1)}"
    return None


@dataclass(frozen=True)
class _Context:
    """What every report of one SES document shares: the ids, the recipients SES sent to, and when it sent."""

    document: dict[str, Any]
    ses_id: str
    postroom_id: str | None
    destination: list[str]
    sent_at: str

    def section(self, name: str) -> dict[str, Any]:
        return self.document.get(name) or {}

    def report(self, type_: EventType, recipient: str | None, at: Any, key: str, **details: Any) -> SesReport:
        return SesReport(type_, self.ses_id, self.postroom_id, recipient, _time(at) or self.sent_at, key, details)


def _send(c: _Context) -> Iterator[SesReport]:
    for address in c.destination:
        yield c.report(EventType.SENT, address, None, sent_key(c.postroom_id or "", address, c.ses_id))


def _delivery(c: _Context) -> Iterator[SesReport]:
    delivery = c.section("delivery")
    for address in delivery.get("recipients") or []:
        yield c.report(
            EventType.DELIVERED,
            address,
            delivery.get("timestamp"),
            f"ses:{c.ses_id}:delivered:{address.lower()}",
            smtp_response=delivery.get("smtpResponse"),
            reporting_mta=delivery.get("reportingMTA"),
            remote_mta_ip=delivery.get("remoteMtaIp"),
            processing_time_ms=delivery.get("processingTimeMillis"),
        )


def _bounce(c: _Context) -> Iterator[SesReport]:
    bounce = c.section("bounce")
    hard = bounce.get("bounceType") == "Permanent"
    for entry in bounce.get("bouncedRecipients") or []:
        address = str(entry.get("emailAddress", ""))
        item = c.report(
            EventType.BOUNCED,
            address,
            bounce.get("timestamp"),
            f"ses:{c.ses_id}:bounced:{address.lower()}:{bounce.get('feedbackId', '')}",
            bounce_type=(BounceType.HARD if hard else BounceType.SOFT).value,
            ses_bounce_type=bounce.get("bounceType"),
            ses_bounce_subtype=bounce.get("bounceSubType"),
            enhanced_status=entry.get("status"),
            reply=entry.get("diagnosticCode"),
            action=entry.get("action"),
            reporting_mta=bounce.get("reportingMTA"),
            feedback_id=bounce.get("feedbackId"),
        )
        item.suppress = SuppressionReason.HARD_BOUNCE if hard else None
        yield item


def _complaint(c: _Context) -> Iterator[SesReport]:
    complaint = c.section("complaint")
    for entry in complaint.get("complainedRecipients") or []:
        address = str(entry.get("emailAddress", ""))
        item = c.report(
            EventType.COMPLAINED,
            address,
            complaint.get("timestamp"),
            f"ses:{c.ses_id}:complained:{address.lower()}:{complaint.get('feedbackId', '')}",
            feedback_type=complaint.get("complaintFeedbackType"),
            complaint_subtype=complaint.get("complaintSubType"),
            user_agent=complaint.get("userAgent"),
            feedback_id=complaint.get("feedbackId"),
        )
        item.suppress = SuppressionReason.COMPLAINT
        yield item


def _delivery_delay(c: _Context) -> Iterator[SesReport]:
    delay = c.section("deliveryDelay")
    for entry in delay.get("delayedRecipients") or []:
        address = str(entry.get("emailAddress", ""))
        yield c.report(
            EventType.DEFERRED,
            address,
            delay.get("timestamp"),
            f"ses:{c.ses_id}:deferred:{address.lower()}:{delay.get('timestamp', '')}",
            delay_type=delay.get("delayType"),
            enhanced_status=entry.get("status"),
            reply=entry.get("diagnosticCode"),
            expiration_time=delay.get("expirationTime"),
        )


def _reject(c: _Context) -> Iterator[SesReport]:
    reason = c.section("reject").get("reason")
    for address in c.destination:
        yield c.report(EventType.REJECTED, address, None, f"ses:{c.ses_id}:rejected:{address.lower()}", reason=reason)


def _rendering_failure(c: _Context) -> Iterator[SesReport]:
    failure = c.section("failure")
    for address in c.destination:
        yield c.report(
            EventType.RENDERING_FAILED,
            address,
            None,
            f"ses:{c.ses_id}:rendering_failed:{address.lower()}",
            error=failure.get("errorMessage"),
            template=failure.get("templateName"),
        )


def _engagement(kind: str, type_: EventType) -> Callable[[_Context], Iterator[SesReport]]:
    """SES's own open or click tracking (when the configuration set has it on): one message, one pixel, so the
    recipient is known only when the message had one."""
    name = kind.lower()

    def reports_of(c: _Context) -> Iterator[SesReport]:
        section = c.section(name)
        recipient = c.destination[0] if len(c.destination) == 1 else None
        yield c.report(
            type_,
            recipient,
            section.get("timestamp"),
            f"ses:{c.ses_id}:{name}:{section.get('timestamp', '')}:{section.get('link', '')}",
            ip_address=section.get("ipAddress"),
            user_agent=section.get("userAgent"),
            url=section.get("link"),
        )

    return reports_of


# SES event type (``eventType`` of event publishing, ``notificationType`` of identity notifications) → its reports.
_REPORTERS: dict[str, Callable[[_Context], Iterator[SesReport]]] = {
    "Send": _send,
    "Delivery": _delivery,
    "Bounce": _bounce,
    "Complaint": _complaint,
    "DeliveryDelay": _delivery_delay,
    "Reject": _reject,
    "Rendering Failure": _rendering_failure,
    "Open": _engagement("Open", EventType.OPENED),
    "Click": _engagement("Click", EventType.CLICKED),
}


def reports(document: dict[str, Any]) -> Iterator[SesReport]:
    """The reports in one SES document, one per recipient concerned; a type Postroom does not map gives none."""
    mail = document["mail"]
    kind = document.get("eventType") or document.get("notificationType") or ""
    reporter = _REPORTERS.get(kind)
    if reporter is None:
        logger.info("SES event type not mapped", extra={"ses_event_type": kind})
        return
    yield from reporter(
        _Context(
            document=document,
            ses_id=str(mail.get("messageId", "")),
            postroom_id=_postroom_id(mail),
            destination=[str(address) for address in mail.get("destination") or []],
            sent_at=_time(mail.get("timestamp")) or "",
        )
    )


def _smtp_code(text: str | None) -> int | None:
    match = _SMTP_CODE.search(text or "")
    return int(match.group(1)) if match else None


def _apply(state: RecipientState, report: SesReport) -> bool:
    """Move the recipient's status as the report says; returns whether anything changed."""
    at = report.occurred_at
    if report.type is EventType.DELIVERED and state.status is RecipientStatus.SENT:
        state.status = RecipientStatus.DELIVERED
        state.reply = report.details.get("smtp_response") or state.reply
        state.smtp_code = _smtp_code(state.reply)
        state.final_at = at
        return True
    if report.type is EventType.BOUNCED and state.status in (RecipientStatus.SENT, RecipientStatus.DELIVERED):
        state.status = RecipientStatus.BOUNCED
        state.reply = report.details.get("reply") or f"bounced ({report.details.get('ses_bounce_type')})"
        state.enhanced_status = report.details.get("enhanced_status")
        state.smtp_code = _smtp_code(report.details.get("reply"))
        state.final_at = at
        return True
    if report.type is EventType.REJECTED and state.status is RecipientStatus.SENT:
        state.status = RecipientStatus.BOUNCED
        state.reply = f"5.7.1 Amazon SES rejected the message: {report.details.get('reason') or 'no reason given'}"
        state.enhanced_status = "5.7.1"
        state.final_at = at
        return True
    if report.type is EventType.RENDERING_FAILED and state.status is RecipientStatus.SENT:
        state.status = RecipientStatus.FAILED
        state.reply = f"Amazon SES could not render the message: {report.details.get('error')}"
        state.final_at = at
        return True
    return False


class SesEventIngester:
    def __init__(self, messages: MessageStore, recorder: EventRecorder) -> None:
        self._messages = messages
        self._recorder = recorder

    def ingest(self, report: SesReport) -> str:
        """Record one report; returns what happened (for logs). Raises NotReadyError to be retried later."""
        if report.postroom_id is None:
            logger.info(
                "SES event for a message Postroom did not send", extra={"ses_message_id": report.ses_message_id}
            )
            return "ignored"
        for _ in range(_MAX_TRIES):
            try:
                record = self._messages.get(report.postroom_id)
            except MessageNotFoundError:
                logger.info("SES event for an unknown message", extra={"message_id": report.postroom_id})
                return "ignored"
            try:
                return self._ingest(record, report)
            except ConcurrentMessageUpdateError:
                continue
        raise NotReadyError(f"{report.postroom_id} kept changing while an SES event was applied")

    def _ingest(self, record: MessageRecord, report: SesReport) -> str:
        state = None
        if report.recipient is not None:
            state = next((r for r in record.recipients if r.address.lower() == report.recipient.lower()), None)
            if state is None:
                logger.info("SES event for a recipient the message does not have", extra={"message_id": record.id})
                return "ignored"
            if state.ses_message_id is None and not state.status.is_final:
                raise NotReadyError(f"{record.id}: the worker has not recorded the SES send yet")
            if state.ses_message_id != report.ses_message_id:
                logger.info("SES event for another send of the message", extra={"message_id": record.id})
                return "ignored"
        elif not any(r.ses_message_id == report.ses_message_id for r in record.recipients):
            return "ignored"

        also = []
        if state is not None and _apply(state, report):
            try:
                record.settle()
            except InvalidTransitionError:
                logger.warning("SES event cannot change the message status", extra={"message_id": record.id})
            record.updated_at = now_iso()
            also.append(self._messages.save_operation(record))
        suppress = None
        if report.suppress is not None and report.recipient:
            suppress = Suppression(
                address=report.recipient,
                reason=report.suppress,
                message_id=record.id,
                details=report.details.get("reply") or report.details.get("feedback_type"),
            )
        event = make_event(
            record,
            report.type,
            recipient=state.address if state else None,
            source="ses",
            occurred_at=report.occurred_at,
            ses_message_id=report.ses_message_id,
            details=report.details,
        )
        key = (
            report.key
            if report.type is not EventType.SENT
            else sent_key(record.id, event.recipient or "", report.ses_message_id)
        )
        (recorded,) = self._recorder.record(record.tenant, [Pending(event, key, suppress=suppress, also=also)])
        return "recorded" if recorded.new else "duplicate"
