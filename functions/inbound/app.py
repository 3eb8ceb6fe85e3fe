"""Inbound Lambda: invoked by the SES receipt rule after its S3 action stored the MIME. Wiring only; see
postroom.receive.inbound_handler."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from postroom.receive.inbound_handler import handle_ses
from postroom.wiring.receive_wiring import filer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_ses(event, context, filer())
