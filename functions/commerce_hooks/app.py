"""Commerce hooks Lambda: POST /v1/hooks/shopify/{store}, /v1/hooks/woocommerce/{store}. Wiring only; the gate is the
platform's HMAC signature (see postroom.api.commerce_hook_routes)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from postroom.api.commerce_hook_routes import handle

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
