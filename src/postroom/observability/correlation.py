"""One correlation id per request, from the API call to the SMTP/SES hand-off.

The send API's Powertools Logger takes the API Gateway request id as its correlation id. ``DeliveryQueue.enqueue``
copies it into the SQS message as the ``correlation_id`` message attribute, and the worker sets it on its logger for
each record, so one CloudWatch Logs Insights filter (``correlation_id = "..."``) finds the request, every delivery
attempt, the SES message id and the receiving server's queue id.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from aws_lambda_powertools import Logger

__all__ = [
    "CORRELATION_ATTRIBUTE",
    "current_correlation_id",
    "message_attributes",
    "service_logger",
    "sqs_correlation_id",
]

CORRELATION_ATTRIBUTE = "correlation_id"
# An SQS message attribute value is free text, but the id ends up in log queries and X-Ray annotations (which allow
# only word characters, "-" and "."): anything else is dropped rather than trusted.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_loggers: dict[str, Logger] = {}
_lock = threading.Lock()


def service_logger() -> Logger:
    """The service's Powertools Logger - the one the handler's ``Logger()`` registered, whose formatter holds the
    correlation id. Looked up when called, not at import: a module-level child logger made before the handler's
    ``Logger()`` is an orphan that cannot read or set keys."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "service_undefined"
    existing = _loggers.get(service)
    if existing is not None:
        return existing
    with _lock:
        # Powertools shares one logging.Logger (and its handler and formatter) per service name.
        return _loggers.setdefault(service, Logger(service=service))


def current_correlation_id() -> str | None:
    """The correlation id the current invocation logs with (the API request id in the send API), if any."""
    value = service_logger().get_correlation_id()
    return value if isinstance(value, str) and _SAFE_ID.match(value) else None


def message_attributes(correlation_id: str | None) -> dict[str, Any]:
    """SQS ``MessageAttributes`` carrying ``correlation_id``; empty when there is none to carry."""
    if not correlation_id or not _SAFE_ID.match(correlation_id):
        return {}
    return {CORRELATION_ATTRIBUTE: {"DataType": "String", "StringValue": correlation_id}}


def sqs_correlation_id(message_attributes: dict[str, Any] | None, fallback: str) -> str:
    """The correlation id an SQS record carries (Lambda event shape: ``stringValue``), else ``fallback`` (the SQS
    message id), so that every worker log line has one."""
    attribute = (message_attributes or {}).get(CORRELATION_ATTRIBUTE) or {}
    value = attribute.get("stringValue") or attribute.get("StringValue")
    return value if isinstance(value, str) and _SAFE_ID.match(value) else fallback
