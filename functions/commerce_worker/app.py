"""Commerce worker Lambda: consumes verified order webhooks. Wiring only; see postroom.commerce.order_mailer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from postroom.commerce.order_mailer import handle_batch
from postroom.wiring.commerce_services import commerce_services
from postroom.wiring.services import services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_batch(event, context, services(), commerce_services())
