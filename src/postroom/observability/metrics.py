"""CloudWatch metrics in Embedded Metric Format (EMF), published through Powertools.

Every metric goes to the ``Postroom`` namespace (``POWERTOOLS_METRICS_NAMESPACE``) with the ``service`` dimension, the
one the stack's alarms and dashboard read. Per-recipient outcomes are published with a second dimension set,
``service + delivery_path + domain_class``, in the same EMF document, so one data point feeds both the total and the
breakdown without a second write. ``delivery_path`` is the agent that decided (``ses``, ``smtp``, ``filter`` for the
suppression list and the pacer, or a local agent's name); ``domain_class`` is the recipient's mailbox provider
(:mod:`postroom.observability.domains`).

The dashboard and alarms in template.yaml name these metrics; tests/observability keeps the two in step.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from postroom.core.clock import parse_iso
from postroom.core.delivery_results import Outcome
from postroom.core.status import RecipientStatus
from postroom.observability.domains import DomainClass, classify

if TYPE_CHECKING:
    from postroom.core.delivery_results import RecipientResult
    from postroom.core.message_record import MessageRecord, RecipientState

__all__ = [
    "DEFAULT_NAMESPACE",
    "DIMENSION_DELIVERY_PATH",
    "DIMENSION_DOMAIN_CLASS",
    "DeliveryMetrics",
    "Metric",
    "count_accepted",
    "count_feedback",
    "record_queue_age",
]

logger = Logger(child=True)

DEFAULT_NAMESPACE = "Postroom"
DEFAULT_SERVICE = "postroom"
DIMENSION_DELIVERY_PATH = "delivery_path"
DIMENSION_DOMAIN_CLASS = "domain_class"
PACED_MARKER = "paced"  # RecipientResult.extra key set by the pacer (postroom.deliver.pacing) on the results it defers


class Metric(StrEnum):
    """Every metric Postroom publishes. Recipient outcomes count recipients, not messages."""

    MESSAGES_ACCEPTED = "MessagesAccepted"  # messages the send path acknowledged (202)
    RECIPIENTS_ACCEPTED = "RecipientsAccepted"  # their envelope recipients
    SENT = "Sent"  # handed to SES, which reports delivery later (its Delivery/Bounce events)
    DELIVERED = "Delivered"  # the receiving server took the message (or SES reported delivery)
    DEFERRED = "Deferred"  # transient failure; retried later
    BOUNCED = "Bounced"  # permanent failure
    COMPLAINED = "Complained"  # the recipient reported it as spam (SES feedback)
    SUPPRESSED = "Suppressed"  # not sent: a filter (the suppression list) stopped it
    FAILED = "Failed"  # gave up after too many attempts or too long
    PACED = "Paced"  # deferred by Postroom's own pacer, before reaching SES or the MX (also counted as Deferred)
    DELIVERY_LATENCY = "DeliveryLatency"  # seconds from acceptance to a final outcome (delivered/bounced/failed)
    QUEUE_AGE = "QueueAge"  # seconds a queue pointer waited since it was first sent, at each receive
    SEND_QUOTA_USED_PERCENT = "SendQuotaUsedPercent"  # SES: sent in the last 24 h / 24-hour quota, in percent
    SES_MAX_SEND_RATE = "SesMaxSendRate"  # SES: messages per second the account may send
    SES_MAX_24_HOUR_SEND = "SesMax24HourSend"
    SES_SENT_LAST_24_HOURS = "SesSentLast24Hours"
    SES_SENDING_ENABLED = "SesSendingEnabled"  # 1 while SES sends for the account, 0 when paused
    PATH_SWITCHES = "PathSwitches"  # a sending domain's deliveries moved to another path (postroom.deliver.failover)


_OUTCOME_METRIC = {
    Outcome.SENT: Metric.SENT,
    Outcome.DELIVERED: Metric.DELIVERED,
    Outcome.DEFERRED: Metric.DEFERRED,
    Outcome.BOUNCED: Metric.BOUNCED,
    Outcome.SUPPRESSED: Metric.SUPPRESSED,
}
_LATENCY_STATUSES = frozenset({RecipientStatus.DELIVERED, RecipientStatus.BOUNCED, RecipientStatus.FAILED})

# Shared Powertools state: what is added here is flushed by the handler's @metrics.log_metrics, in its EMF document.
# Built on first use, not at import: Powertools flushes by itself every 100 metrics and then needs the namespace,
# which must be read from the environment the function runs with.
_metrics_instance: Metrics | None = None


def _handler_metrics() -> Metrics:
    global _metrics_instance
    if _metrics_instance is None:
        _metrics_instance = Metrics(namespace=_namespace(), service=_service())
    return _metrics_instance


def _namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


def _service() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE


@dataclass
class _Tally:
    counts: dict[Metric, int] = field(default_factory=lambda: defaultdict(int))
    latencies: list[float] = field(default_factory=list)


def _publish(tally: _Tally, breakdown: dict[str, str]) -> None:
    """One EMF document: the values under ``[service]`` and under ``[service, *breakdown]``."""
    emf = EphemeralMetrics(namespace=_namespace(), service=_service())
    for metric, count in tally.counts.items():
        emf.add_metric(name=metric.value, unit=MetricUnit.Count, value=count)
    for seconds in tally.latencies:
        emf.add_metric(name=Metric.DELIVERY_LATENCY.value, unit=MetricUnit.Seconds, value=seconds)
    emf.add_dimensions(service=_service(), **breakdown)
    emf.flush_metrics()


class DeliveryMetrics:
    """AttemptObserver: recipient outcomes, pacing and latency of each delivery attempt (and of each give-up)."""

    def attempted(self, record: MessageRecord, results: list[tuple[RecipientResult, str]]) -> None:
        try:
            for (path, domain_class), tally in _tally(record, results).items():
                _publish(tally, {DIMENSION_DELIVERY_PATH: path, DIMENSION_DOMAIN_CLASS: domain_class.value})
        except Exception:  # an observer must not fail a delivery that already happened
            logger.exception("delivery metrics could not be published", extra={"message_id": record.id})


def _tally(record: MessageRecord, results: list[tuple[RecipientResult, str]]) -> dict[tuple[str, DomainClass], _Tally]:
    tallies: dict[tuple[str, DomainClass], _Tally] = defaultdict(_Tally)
    states = {state.address.lower(): state for state in record.recipients}
    reported: set[str] = set()
    for result, agent in results:
        address = result.recipient.lower()
        reported.add(address)
        state = states.get(address)
        tally = tallies[(agent, classify(_domain(address), result.mx_host))]
        # A deferral that ended in a give-up is a failure, not one more deferral.
        failed = state is not None and state.status is RecipientStatus.FAILED
        tally.counts[Metric.FAILED if failed else _OUTCOME_METRIC[result.outcome]] += 1
        if result.extra.get(PACED_MARKER):
            tally.counts[Metric.PACED] += 1
        if state is not None:
            _add_latency(tally, record, state)
    # A give-up before any attempt has no results: the recipients it failed carry the give-up's time as final_at.
    for address, state in states.items():
        if address in reported or state.status is not RecipientStatus.FAILED or state.final_at != record.updated_at:
            continue
        tally = tallies[(state.delivery or "none", classify(_domain(address), state.mx_host))]
        tally.counts[Metric.FAILED] += 1
        _add_latency(tally, record, state)
    return tallies


def _add_latency(tally: _Tally, record: MessageRecord, state: RecipientState) -> None:
    if state.status in _LATENCY_STATUSES and state.final_at:
        seconds = (parse_iso(state.final_at) - parse_iso(record.created_at)).total_seconds()
        tally.latencies.append(max(0.0, seconds))


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def count_accepted(recipients: int) -> None:
    """One message acknowledged by the send path, with its number of envelope recipients."""
    _handler_metrics().add_metric(name=Metric.MESSAGES_ACCEPTED.value, unit=MetricUnit.Count, value=1)
    _handler_metrics().add_metric(name=Metric.RECIPIENTS_ACCEPTED.value, unit=MetricUnit.Count, value=recipients)


def count_path_switch(to_path: str) -> None:
    """A sending domain failed over to (or back to) ``to_path``."""
    metrics = _handler_metrics()
    metrics.add_metric(name=Metric.PATH_SWITCHES.value, unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="to_path", value=to_path)


def record_queue_age(seconds: float) -> None:
    """How long a queue pointer had waited when a worker received it."""
    _handler_metrics().add_metric(name=Metric.QUEUE_AGE.value, unit=MetricUnit.Seconds, value=max(0.0, seconds))


def count_feedback(metric: Metric, *, delivery_path: str, recipient: str, mx_host: str | None = None) -> None:
    """A complaint or a late bounce reported after the hand-off (SES event notifications), with the same
    dimensions as the worker's own outcomes, so bounce and complaint rates include them."""
    if metric not in (Metric.COMPLAINED, Metric.BOUNCED):
        raise ValueError(f"{metric} is not a feedback metric")
    tally = _Tally()
    tally.counts[metric] += 1
    domain_class = classify(_domain(recipient), mx_host)
    _publish(tally, {DIMENSION_DELIVERY_PATH: delivery_path, DIMENSION_DOMAIN_CLASS: domain_class.value})
