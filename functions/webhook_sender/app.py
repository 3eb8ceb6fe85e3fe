"""Webhook sender Lambda: consumes the webhook queue in batches. Wiring only; see postroom.webhooks.sender_batch."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from postroom.webhooks.sender_batch import handle_batch
from postroom.wiring.event_services import event_services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_batch(event, context, event_services())
