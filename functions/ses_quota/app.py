"""SES quota publisher, run on a schedule: SendQuotaUsedPercent and the account's send figures as EMF metrics.
Wiring only; see postroom.observability.ses_quota."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from postroom.core import aws
from postroom.observability.ses_quota import publish_quota

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return publish_quota(aws.client("sesv2"), metrics)
