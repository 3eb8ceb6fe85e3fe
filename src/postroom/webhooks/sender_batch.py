"""The webhook sender's SQS batch: one delivery attempt per record. A failed attempt sets the record's visibility
timeout to the next delay of the retry schedule and reports it as a batch item failure, so SQS hands it back then;
the attempt number is SQS's receive count. After the last attempt the task is parked in the webhook DLQ with why.

Tasks of one batch for the same subscription whose dialect batches (SendGrid's arrays) are sent together first, in
one request; each record then takes its own decision from that request's answer."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from postroom.core import aws
from postroom.webhooks.attempt import Decision, WebhookDeliverer
from postroom.webhooks.fanout import WebhookTask

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.wiring.event_services import EventServices

logger = Logger(child=True)
# A batch whose every record failed is still a partial response: each record keeps the visibility timeout it was
# given (a retry delay), instead of the whole invocation failing and SQS resetting them all.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLaterError(Exception):
    """Marks a failed attempt as a batch item failure; its visibility timeout already holds the next delay."""


def handle_batch(event: dict[str, Any], context: LambdaContext, svc: EventServices) -> PartialItemFailureResponse:
    """``svc`` comes from the function's wiring (functions/webhook_sender/app.py)."""
    deliverer = WebhookDeliverer(svc.config, svc.webhooks, svc.events)
    sqs = aws.client("sqs")

    def dead_letter(body: str, reason: str) -> None:
        if svc.config.webhook_dlq_url:
            sqs.send_message(
                QueueUrl=svc.config.webhook_dlq_url,
                MessageBody=body,
                MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
            )

    grouped = _grouped(event, deliverer)

    def record_handler(record: SQSRecord) -> str:
        try:
            task = WebhookTask.from_json(record.body)
        except ValueError:
            dead_letter(record.body, "unreadable queue body: not a Postroom webhook task")
            return "dead-lettered"
        attempt = int(record.attributes.approximate_receive_count or 1)
        done = grouped.get(record.message_id)
        if isinstance(done, Exception):
            raise done
        decision = done if done is not None else deliverer.deliver(task, attempt)
        if decision.retry_in is not None:
            sqs.change_message_visibility(
                QueueUrl=svc.config.webhook_queue_url,
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=decision.retry_in,
            )
            raise RetryLaterError(f"{task.event_id} to {task.subscription_id}: retry in {decision.retry_in} s")
        if decision.dead_letter_reason:
            dead_letter(record.body, decision.dead_letter_reason)
        return decision.outcome

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def _grouped(event: dict[str, Any], deliverer: WebhookDeliverer) -> dict[str, Decision | Exception]:
    """Send each batching subscription's tasks of this batch in one request: SQS message id → its decision (or the
    exception, raised again by that record's handler so SQS keeps it)."""
    groups: dict[tuple[str, str], list[tuple[str, WebhookTask, int]]] = defaultdict(list)
    for raw in event.get("Records") or []:
        try:
            task = WebhookTask.from_json(raw.get("body") or "")
        except ValueError:
            continue  # the record handler dead-letters it
        attempt = int((raw.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        groups[(task.tenant, task.subscription_id)].append((raw.get("messageId") or "", task, attempt))
    done: dict[str, Decision | Exception] = {}
    for (tenant, subscription_id), members in groups.items():
        if len(members) < 2 or not deliverer.batches(tenant, subscription_id):
            continue
        try:
            decisions: list[Decision | Exception] = list(
                deliverer.deliver_group([(task, attempt) for _, task, attempt in members])
            )
        except Exception as error:
            logger.exception("webhook group delivery failed", extra={"subscription": subscription_id})
            decisions = [error] * len(members)
        done.update((message_id, decision) for (message_id, _, _), decision in zip(members, decisions, strict=True))
    return done
