"""Per-record context for the delivery worker: correlation id, queue age, and an X-Ray subsegment.

Wraps the batch's ``record_handler`` so each SQS record is logged under the correlation id it carries (the API
request id, see :mod:`postroom.observability.correlation`) and traced in its own subsegment, annotated with the
Postroom message id and correlation id - X-Ray's search (``annotation.message_id = "msg_..."``) then finds the trace.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from aws_lambda_powertools import Tracer

from postroom.observability.correlation import service_logger, sqs_correlation_id
from postroom.observability.metrics import record_queue_age

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["queue_age_seconds", "with_record_context"]

tracer = Tracer()

T = TypeVar("T")
_RECORD_KEYS = ("sqs_message_id", "message_id", "receive_count")


def queue_age_seconds(record: SQSRecord, now: float | None = None) -> float | None:
    """Seconds since the pointer was first sent (SQS ``SentTimestamp``; retries keep the original time)."""
    sent = record.attributes.sent_timestamp
    if not sent:
        return None
    return max(0.0, (now if now is not None else time.time()) - int(sent) / 1000)


def _message_id(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def with_record_context(handler: Callable[[SQSRecord], T]) -> Callable[[SQSRecord], T]:
    @functools.wraps(handler)
    def wrapper(record: SQSRecord) -> T:
        correlation_id = sqs_correlation_id(record.raw_event.get("messageAttributes"), record.message_id)
        message_id = _message_id(record.body)
        logger = service_logger()
        logger.set_correlation_id(correlation_id)
        logger.append_keys(
            sqs_message_id=record.message_id,
            message_id=message_id,
            receive_count=record.attributes.approximate_receive_count,
        )
        age = queue_age_seconds(record)
        if age is not None:
            record_queue_age(age)
        try:
            with tracer.provider.in_subsegment(name="## delivery") as subsegment:
                subsegment.put_annotation("correlation_id", correlation_id)
                if message_id:
                    subsegment.put_annotation("message_id", message_id)
                return handler(record)
        finally:
            # The next record (or invocation) must not inherit this record's ids.
            logger.set_correlation_id(None)
            logger.remove_keys(_RECORD_KEYS)

    return wrapper
