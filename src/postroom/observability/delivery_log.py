"""One structured log line per recipient and attempt: the ids that tie Postroom's record to the other side.

With the correlation id the worker sets per SQS record, a line carries the Postroom message id, the SES message id
(SES path) or the receiving server's queue id (direct SMTP), the MX host, TLS, and the SMTP codes. Addresses are not
logged - only their domain - because logs are kept longer and read more widely than the message records; the full
per-recipient detail is in ``GET /v1/messages/{id}``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aws_lambda_powertools import Tracer

from postroom.core.delivery_results import Outcome
from postroom.observability.correlation import service_logger
from postroom.observability.domains import classify
from postroom.observability.queue_ids import queue_id

if TYPE_CHECKING:
    from postroom.core.delivery_results import RecipientResult
    from postroom.core.message_record import MessageRecord

__all__ = ["DeliveryLog"]

tracer = Tracer()

# Servers often quote the address in a refusal ("550 5.1.1 <ann@example.org>: no such user"): keep only the domain.
_ADDRESS = re.compile(r"[^\s<>\"'@]+@(?=[A-Za-z0-9.-]+)")
_REPLY_MAX = 500


class DeliveryLog:
    """AttemptObserver: logs each recipient's result with the ids an operator needs to follow the message."""

    def attempted(self, record: MessageRecord, results: list[tuple[RecipientResult, str]]) -> None:
        log = service_logger()  # its lines carry the correlation id the worker set for this record
        try:
            states = {state.address.lower(): state for state in record.recipients}
            for position, (result, agent) in enumerate(results):
                domain = result.recipient.rpartition("@")[2].lower()
                state = states.get(result.recipient.lower())
                fields: dict[str, object] = {
                    "message_id": record.id,
                    "recipient_index": position,
                    "recipient_domain": domain,
                    "domain_class": classify(domain, result.mx_host).value,
                    "outcome": result.outcome.value,
                    "status": state.status.value if state else None,
                    "agent": agent,
                    "attempt": record.attempts,
                    "smtp_code": result.smtp_code,
                    "enhanced_status": result.enhanced_status,
                    "mx_host": result.mx_host,
                    "tls_version": result.tls_version,
                    "ses_message_id": result.ses_message_id,
                    "queue_id": queue_id(result.reply) if result.smtp_code and result.smtp_code < 300 else None,
                    "reply": _redact(result.reply) if result.outcome is not Outcome.DELIVERED else None,
                }
                log.info("recipient result", extra={k: v for k, v in fields.items() if v is not None})
            tracer.put_annotation("message_status", record.status.value)
        except Exception:  # an observer must not fail a delivery that already happened
            log.exception("delivery log failed", extra={"message_id": record.id})


def _redact(reply: str) -> str | None:
    return _ADDRESS.sub("…@", reply)[:_REPLY_MAX] or None
