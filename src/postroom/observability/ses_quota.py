"""The account's Amazon SES sending quota, read with SES v2 ``GetAccount``.

SES publishes no CloudWatch metric for how much of the 24-hour quota is used, so a scheduled function reads it and
publishes ``SendQuotaUsedPercent`` (the stack's quota alarm fires above 80 %), with the raw figures beside it. The
worker's pacer reads the same call for ``MaxSendRate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from postroom.observability.metrics import Metric

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

__all__ = ["QUOTA_WARNING_PERCENT", "SesAccount", "publish_quota", "read_account"]

logger = Logger(child=True)

QUOTA_WARNING_PERCENT = 80.0  # the same threshold as the SesQuotaAlarm in template.yaml
_UNLIMITED = -1.0  # what SES answers for Max24HourSend on accounts without a daily quota


@dataclass(frozen=True)
class SesAccount:
    max_24_hour_send: float
    max_send_rate: float
    sent_last_24_hours: float
    sending_enabled: bool
    production_access: bool
    enforcement_status: str

    @property
    def used_percent(self) -> float:
        """Share of the 24-hour quota used, in percent; 0 for an account without a daily quota."""
        if self.max_24_hour_send <= 0:
            return 0.0
        return round(100.0 * self.sent_last_24_hours / self.max_24_hour_send, 3)


def read_account(sesv2: Any) -> SesAccount:
    """``GetAccount`` as the figures Postroom uses. Raises botocore's errors as they come."""
    response = sesv2.get_account()
    quota = response.get("SendQuota") or {}
    return SesAccount(
        max_24_hour_send=float(quota.get("Max24HourSend", _UNLIMITED)),
        max_send_rate=float(quota.get("MaxSendRate", 0.0)),
        sent_last_24_hours=float(quota.get("SentLast24Hours", 0.0)),
        sending_enabled=bool(response.get("SendingEnabled", False)),
        production_access=bool(response.get("ProductionAccessEnabled", False)),
        enforcement_status=str(response.get("EnforcementStatus", "UNKNOWN")),
    )


def publish_quota(sesv2: Any, metrics: Metrics) -> dict[str, Any]:
    """Read the account and add its figures to ``metrics`` (flushed by the handler). Returns what was read."""
    account = read_account(sesv2)
    metrics.add_metric(name=Metric.SEND_QUOTA_USED_PERCENT.value, unit=MetricUnit.Percent, value=account.used_percent)
    metrics.add_metric(name=Metric.SES_MAX_SEND_RATE.value, unit=MetricUnit.CountPerSecond, value=account.max_send_rate)
    metrics.add_metric(name=Metric.SES_MAX_24_HOUR_SEND.value, unit=MetricUnit.Count, value=account.max_24_hour_send)
    metrics.add_metric(
        name=Metric.SES_SENT_LAST_24_HOURS.value, unit=MetricUnit.Count, value=account.sent_last_24_hours
    )
    metrics.add_metric(
        name=Metric.SES_SENDING_ENABLED.value, unit=MetricUnit.Count, value=1 if account.sending_enabled else 0
    )
    summary = {
        "used_percent": account.used_percent,
        "sent_last_24_hours": account.sent_last_24_hours,
        "max_24_hour_send": account.max_24_hour_send,
        "max_send_rate": account.max_send_rate,
        "sending_enabled": account.sending_enabled,
        "production_access": account.production_access,
        "enforcement_status": account.enforcement_status,
    }
    # Log lines an operator can alert on or search for, beside the metrics.
    if account.used_percent >= QUOTA_WARNING_PERCENT:
        logger.warning("SES 24-hour quota nearly used up", extra=summary)
    elif not account.sending_enabled or account.enforcement_status not in ("HEALTHY", "UNKNOWN"):
        logger.warning("SES account is not sending normally", extra=summary)
    elif not account.production_access:
        logger.warning("SES account is in the sandbox: only verified recipients get mail", extra=summary)
    else:
        logger.info("SES quota read", extra=summary)
    return summary
