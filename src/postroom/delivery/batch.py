"""The SQS batch around :class:`Deliverer`: Powertools BatchProcessor with partial batch responses.

One SMTP agent per batch, so messages of a batch going to the same MX host share one connection. A deferred message
gets its visibility timeout set to the backoff delay and is reported as a batch item failure: SQS keeps it and hands
it back when the delay is over, while the rest of the batch is deleted as done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from postroom import aws
from postroom.delivery.ses import SesDeliveryAgent
from postroom.delivery.worker import Deliverer
from postroom.queue import DeliveryTask
from postroom.services import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.delivery.mx import MxHost, MxResolver
    from postroom.delivery.smtp import SmtpDeliveryAgent
    from postroom.settings import Settings

logger = Logger(child=True)
processor = BatchProcessor(event_type=EventType.SQS)
_resolver: MxResolver | None = None


class RetryLaterError(Exception):
    """Marks a deferred record as a batch item failure; its visibility timeout already holds the backoff."""


def _mx_resolver(settings: Settings) -> MxResolver:
    global _resolver
    if _resolver is None:
        from postroom.delivery.mx import MxResolver, parse_nameservers

        nameservers = parse_nameservers(settings.dns_nameservers) if settings.dns_nameservers else None
        _resolver = MxResolver(nameservers=nameservers)
    return _resolver


def reset_resolver() -> None:
    global _resolver
    _resolver = None


class _DeferredResolver:
    """The process's MX resolver, built (and dnspython imported) on the first SMTP delivery: a worker that only sends
    through SES never pays for it at cold start."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def resolve(self, domain: str) -> list[MxHost]:
        return _mx_resolver(self._settings).resolve(domain)


def smtp_agent(settings: Settings) -> SmtpDeliveryAgent:
    from postroom.delivery.smtp import SmtpDeliveryAgent, SmtpOptions

    options = SmtpOptions(
        port=settings.smtp_port,
        helo_name=settings.helo,
        timeout=settings.smtp_timeout,
        tls_verify=settings.smtp_tls_verify,
    )
    return SmtpDeliveryAgent(_DeferredResolver(settings), options)  # type: ignore[arg-type]


def handle_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    svc = services()
    with smtp_agent(svc.settings) as smtp:
        deliverer = Deliverer(
            settings=svc.settings,
            store=svc.messages,
            queue=svc.queue,
            ses=SesDeliveryAgent(aws.client("sesv2"), configuration_set=svc.settings.ses_configuration_set),
            smtp=smtp,
        )

        def record_handler(record: SQSRecord) -> str:
            try:
                task = DeliveryTask.from_json(record.body)
            except ValueError:
                # Not ours, or corrupted: retrying cannot help, so park it with the reason instead of looping.
                svc.queue.dead_letter(record.body, "unreadable queue body: not a Postroom delivery task")
                logger.error("unreadable queue body dead-lettered", extra={"sqs_message_id": record.message_id})
                return "dead-lettered"
            result = deliverer.attempt(task)
            if result.retry_in is not None:
                svc.queue.retry_later(record.receipt_handle, result.retry_in)
                raise RetryLaterError(f"{task.message_id} deferred for {result.retry_in} s")
            return result.status.value if result.status else "dropped"

        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
