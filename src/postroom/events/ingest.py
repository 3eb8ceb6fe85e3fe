"""The events function: SES events from the events queue (SNS → SQS) into Postroom events and statuses.

A report that arrives before the worker has saved the SES send is put back with a short visibility timeout and
reported as a batch item failure; anything that is not an SES document is logged and dropped (retrying cannot help).
Events the worker parked (``postroom.events.parking``) arrive on the same queue and are recorded here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from postroom.core import aws
from postroom.events.parking import record_parked
from postroom.events.ses_notifications import NotReadyError, documents, reports

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.wiring.event_services import EventServices

logger = Logger(child=True)
# A batch whose every record failed is still a partial response: each record keeps the visibility timeout it was
# given (a retry delay), instead of the whole invocation failing and SQS resetting them all.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

NOT_READY_RETRY_SECONDS = 10  # the worker saves within seconds of SES accepting; no need to wait a full timeout


def handle_batch(event: dict[str, Any], context: LambdaContext, svc: EventServices) -> PartialItemFailureResponse:
    """``svc`` comes from the function's wiring (functions/events/app.py)."""

    def record_handler(record: SQSRecord) -> str:
        from postroom.events.ses_notifications import SesEventIngester

        ingester = SesEventIngester(svc.core.messages, svc.recorder)
        # The worker's events that could not be written at the time; a failure here leaves the record retriable.
        recorded = record_parked(svc.recorder, record.body)
        if recorded is not None:
            return f"parked:{recorded}"
        try:
            found = [report for document in documents(record.body) for report in reports(document)]
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            logger.error("not an SES event; dropped", extra={"sqs_message_id": record.message_id})
            return "dropped"
        try:
            outcomes = [ingester.ingest(report) for report in found]
        except NotReadyError:
            if not svc.config.events_queue_url:
                raise  # without the queue's URL the report returns after the queue's visibility timeout
            aws.client("sqs").change_message_visibility(
                QueueUrl=svc.config.events_queue_url,
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=NOT_READY_RETRY_SECONDS,
            )
            raise
        return ",".join(outcomes) or "nothing"

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
