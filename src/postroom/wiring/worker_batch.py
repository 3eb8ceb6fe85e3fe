"""The SQS batch around :class:`Deliverer`: Powertools BatchProcessor with partial batch responses.

One SMTP agent per batch, so messages of a batch going to the same MX host share one connection. A deferred message
gets its visibility timeout set to the backoff delay and is reported as a batch item failure: SQS keeps it and hands
it back when the delay is over, while the rest of the batch is deleted as done.

Each record's ``ApproximateReceiveCount`` goes to the worker, which gives up on a message whose processing keeps
crashing (see ``Settings.poison_receive_count``). A record whose handling raises is never reported done, whatever the
count, so SQS keeps it: at worst the queue's redrive moves it to the dead-letter queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from postroom.accept.delivery_queue import DeliveryTask
from postroom.core import aws
from postroom.deliver.deliverer import AttemptResult, Deliverer
from postroom.deliver.mx import MxResolver
from postroom.deliver.pacing import AccountSendRate, PaceWindows, PacingFilter
from postroom.deliver.send_once import send_guard
from postroom.deliver.ses_agent import SesDeliveryAgent
from postroom.observability.delivery_log import DeliveryLog
from postroom.observability.metrics import DeliveryMetrics
from postroom.observability.records import with_record_context
from postroom.wiring import worker_attachments
from postroom.wiring import worker_deliverability as deliverability
from postroom.wiring.event_services import event_services
from postroom.wiring.receive_wiring import internal_delivery_agents
from postroom.wiring.services import services
from postroom.wiring.worker_events import delivery_hooks

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.core.settings import Settings
    from postroom.deliver.mx import MxResolver
    from postroom.deliver.smtp_agent import SmtpDeliveryAgent

logger = Logger(child=True)
# Powertools fails the invocation when every record of a batch failed. For a batch of deferrals that is wrong (the
# visibility timeouts already hold the backoff, and the error would only trip the function-errors alarm), so the
# decision is made in handle_batch: only a batch that failed entirely *and* crashed fails the invocation.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_resolver: MxResolver | None = None


class RetryLaterError(Exception):
    """Marks a deferred record as a batch item failure; its visibility timeout already holds the backoff."""


def _mx_resolver(settings: Settings) -> MxResolver:
    global _resolver
    if _resolver is None:
        from postroom.deliver.mx import MxResolver, parse_nameservers

        nameservers = parse_nameservers(settings.dns_nameservers) if settings.dns_nameservers else None
        _resolver = MxResolver(nameservers=nameservers)
    return _resolver


def reset_resolver() -> None:
    global _resolver
    _resolver = None
    deliverability.reset()


def smtp_agent(settings: Settings) -> SmtpDeliveryAgent:
    from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions

    options = SmtpOptions(
        port=settings.smtp_port,
        helo_name=settings.helo,
        timeout=settings.smtp_timeout,
        tls_verify=settings.smtp_tls_verify,
        ca_file=settings.deliverability.tls_ca_file or None,
    )
    resolver = _mx_resolver(settings)
    return SmtpDeliveryAgent(resolver, options, deliverability.tls_policies(settings, resolver))


def relay_agent(settings: Settings) -> SmtpDeliveryAgent | None:
    if not settings.relay_host:
        return None
    from postroom.deliver.relay_agent import RelayDeliveryAgent, secret_loader
    from postroom.deliver.smtp_agent import SmtpOptions

    host, port = settings.relay_endpoint
    options = SmtpOptions(
        port=port,
        helo_name=settings.helo,
        timeout=settings.smtp_timeout,
        tls_verify=settings.relay_tls_verify,
        require_tls=True,
    )
    credentials = secret_loader(settings.relay_secret, settings.relay_auth) if settings.relay_secret else None
    return RelayDeliveryAgent(
        host, options, auth=settings.relay_auth, credentials=credentials, ca_file=settings.relay_ca_file or None
    )


def _receive_count(record: SQSRecord) -> int:
    """How many times SQS has handed this record over, this time included (1 when the attribute is missing)."""
    try:
        return max(1, int(record.attributes.approximate_receive_count or 1))
    except ValueError:
        return 1


def _attempt_all(deliverer: Deliverer, event: dict[str, Any]) -> dict[str, AttemptResult | Exception]:
    """Attempt every readable record of the batch together (see ``Deliverer.attempt_batch``), keyed by SQS message
    id; the batch processor then reports each record's outcome, so a failed one is retried alone. A pointer that
    appears twice in one batch (SQS delivers at least once) is attempted after the others, on its own."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    first: list[tuple[str, DeliveryTask, int]] = []
    again: list[tuple[str, DeliveryTask, int]] = []
    seen: set[str] = set()
    for raw in event.get("Records", []):
        record = SQSRecord(raw)
        try:
            task = DeliveryTask.from_json(record.body)
        except ValueError:
            continue  # the record handler dead-letters it
        (again if task.message_id in seen else first).append((record.message_id, task, _receive_count(record)))
        seen.add(task.message_id)
    outcomes: dict[str, AttemptResult | Exception] = {}
    for group in [first, *([entry] for entry in again)]:
        results = deliverer.attempt_batch([(task, received) for _, task, received in group])
        outcomes.update((sqs_id, result) for (sqs_id, _, _), result in zip(group, results, strict=True))
    return outcomes


def pacing_filter(settings: Settings) -> PacingFilter:
    windows = PaceWindows(aws.client("dynamodb"), settings.table)
    return PacingFilter(settings, windows, AccountSendRate(aws.client("sesv2")))


def handle_batch(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    svc = services()
    hooks = delivery_hooks()
    relay = relay_agent(svc.settings)
    with smtp_agent(svc.settings) as smtp:
        deliverer = Deliverer(
            settings=svc.settings,
            store=svc.messages,
            queue=svc.queue,
            ses=worker_attachments.link_oversize_ses(
                SesDeliveryAgent(aws.client("sesv2"), configuration_set=svc.settings.ses_configuration_set), svc
            ),
            smtp=worker_attachments.link_oversize(deliverability.sign_outgoing(smtp, svc.settings), smtp, svc),
            relay=deliverability.sign_outgoing(relay, svc.settings) if relay is not None else None,
            send_guard=send_guard(svc, context),
            # The pacer runs after any other filter (suppression), so recipients another filter decides take no slot.
            filters=[*hooks["filters"], pacing_filter(svc.settings)],
            observers=[*hooks["observers"], DeliveryLog(), DeliveryMetrics()],
            decorators=hooks["decorators"],
            local=internal_delivery_agents(svc.settings),
            return_path=event_services().return_path(),
            holds=hooks.get("holds"),
            resolvers=worker_attachments.request_resolvers(svc),
            routers=hooks.get("routers"),
        )

        outcomes = _attempt_all(deliverer, event)

        def record_handler(record: SQSRecord) -> str:
            outcome = outcomes.get(record.message_id)
            if outcome is None:
                # Not ours, or corrupted: retrying cannot help, so park it with the reason instead of looping.
                svc.queue.dead_letter(record.body, "unreadable queue body: not a Postroom delivery task")
                logger.error("unreadable queue body dead-lettered", extra={"sqs_message_id": record.message_id})
                return "dead-lettered"
            if isinstance(outcome, Exception):
                received = _receive_count(record)
                if received >= svc.settings.poison_receive_count:
                    # The give-up itself crashed (or the record cannot even be read): the exception keeps the pointer
                    # in the queue, and this line is the only reason an operator will find for a redriven message.
                    logger.error(
                        "could not give up on a message whose processing keeps crashing; SQS keeps it for redrive",
                        extra={
                            "message_id": DeliveryTask.from_json(record.body).message_id,
                            "receive_count": received,
                        },
                        exc_info=outcome,
                    )
                raise outcome
            if outcome.retry_in is not None:
                svc.queue.retry_later(record.receipt_handle, outcome.retry_in)
                raise RetryLaterError(f"{outcome.message_id} deferred for {outcome.retry_in} s")
            return outcome.status.value if outcome.status else "dropped"

        try:
            response = process_partial_response(
                event=event, record_handler=with_record_context(record_handler), processor=processor, context=context
            )
            failures = [info[1] for info in processor.exceptions]
            crashed = [error for error in failures if not isinstance(error, RetryLaterError)]
            if crashed and len(failures) == len(processor.records):
                # Every record failed and some crashed: an invocation error, as Lambda reports it (and the alarm).
                raise BatchProcessingError(
                    msg=f"all {len(failures)} records failed; {len(crashed)} crashed",
                    child_exceptions=processor.exceptions,
                )
            return response
        finally:
            if relay is not None:
                relay.close()
