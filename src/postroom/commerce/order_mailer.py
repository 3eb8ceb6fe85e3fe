"""The commerce worker: queued webhooks become order mails, reminders and cancellations.

Each mail goes through :func:`postroom.accept.intake.accept` (the one way into Postroom) inside a Powertools idempotency
record keyed on (store, mail kind, order id): a webhook delivered three times - or an ``order.created`` followed by an
``order.updated`` with the same status - still sends one mail. Abandoned-checkout reminders are scheduled messages
(``send_at``); a newer version of the cart replaces the reminder, and the order that completes the checkout cancels it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from postroom.accept import scheduling
from postroom.accept.compose import MessageInput
from postroom.commerce.orders import (
    Action,
    CheckoutDone,
    Ignored,
    Mail,
    RefundMail,
    RememberOrder,
    Reminder,
    order_defaults,
    shopify_actions,
    woocommerce_actions,
)
from postroom.commerce.stores import Platform, Store
from postroom.core.auth import Principal, Scope
from postroom.core.clock import parse_iso, utcnow
from postroom.core.errors import ConflictError, PostroomError, ServiceUnavailableError
from postroom.core.message_store import MessageNotFoundError
from postroom.core.status import MessageStatus

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.commerce.registry import CommerceServices
    from postroom.wiring.services import Services

logger = Logger(child=True)
processor = BatchProcessor(event_type=EventType.SQS)

# A reminder due in the past (a late webhook) still goes out, shortly.
MIN_REMINDER_DELAY = timedelta(minutes=1)


@dataclass(frozen=True)
class CommerceTask:
    platform: Platform
    store: str
    topic: str
    delivery_id: str
    payload: str

    @classmethod
    def from_json(cls, body: str) -> CommerceTask:
        data = json.loads(body)
        return cls(Platform(data["platform"]), data["store"], data["topic"], data["delivery_id"], data["payload"])


class CommerceWorker:
    def __init__(self, svc: Services, commerce: CommerceServices, context: LambdaContext | None = None) -> None:
        self._svc = svc
        self._commerce = commerce
        self._context = context

    def process(self, task: CommerceTask) -> list[str]:
        """Carry out what one webhook asks for; returns a line per action (for the log and the tests)."""
        store = self._commerce.stores.get(task.store)
        if store is None:
            return [f"store {task.store} no longer exists"]
        payload = self._commerce.payload(task.payload)
        mapper = shopify_actions if task.platform is Platform.SHOPIFY else woocommerce_actions
        actions = mapper(task.topic, payload, store)
        if isinstance(actions, Ignored):
            return [f"ignored: {actions.reason}"]
        return [self._do(store, action) for action in actions]

    def _do(self, store: Store, action: Action) -> str:
        try:
            if isinstance(action, RememberOrder):
                self._commerce.remember_order(store.id, action.order_id, action.email, action.variables)
                return f"remembered order {action.order_id}"
            if isinstance(action, Mail):
                return self._mail(store, action.kind, action.key, action.email, action.variables)
            if isinstance(action, RefundMail):
                return self._refund(store, action)
            if isinstance(action, Reminder):
                return self._remind(store, action)
            return self._checkout_done(store, action)
        except ServiceUnavailableError:
            raise  # transient: the SQS record is retried
        except PostroomError as error:
            # Permanent for this webhook (a sender domain not configured, a template that does not render): retrying
            # cannot help, so it is logged for the shop's operator and the webhook is done.
            logger.error("order mail refused", extra={"store": store.id, "code": error.code, "reason": error.message})
            return f"refused: {error.code}: {error.message}"

    def _send(self, store: Store, kind: str, key: str, email: str, variables: dict[str, Any], **extra: Any) -> Any:
        once = self._svc.once("commerce-mail")
        if once is None:
            raise ServiceUnavailableError("this stack has no idempotency table; order mails cannot be made single")
        request = MessageInput.model_validate(
            {
                "from": store.sender,
                "to": [{"email": email, "name": variables["customer"]["name"]}],
                "template": kind,
                "variables": variables,
                "tags": ["commerce", kind],
                "metadata": {"store": store.id, "order": str(variables["order"]["id"])[:1024]},
                **extra,
            }
        )
        principal = Principal(key_id=f"store:{store.id}", tenant=store.tenant, scopes=frozenset({Scope.MESSAGES_SEND}))
        svc = self._svc

        def work() -> dict[str, str]:
            accepted = svc.accept(request, principal)
            return {"id": accepted.id, "status": accepted.status.value}

        return once.run(key, work, context=self._context)

    def _mail(self, store: Store, kind: str, key: str, email: str, variables: dict[str, Any]) -> str:
        result, replayed = self._send(store, kind, key, email, variables)
        return f"{kind} {'already sent as' if replayed else 'sent as'} {result['id']}"

    def _refund(self, store: Store, action: RefundMail) -> str:
        known = self._commerce.order(store.id, action.order_id)
        if known is None:
            return f"ignored: refund for order {action.order_id}, which Postroom never saw"
        email, variables = known
        # An order remembered before a template variable existed (locale, totals) still renders: the missing keys get
        # the defaults every new order has.
        variables["order"] = order_defaults(variables["order"])
        variables["order"]["refund"] = action.refund
        key = f"{store.id}:refund:{action.order_id}:{action.refund_id}"
        return self._mail(store, "refund", key, email, variables)

    def _remind(self, store: Store, action: Reminder) -> str:
        checkout = self._commerce.checkout(store.id, action.token)
        if checkout.get("completed"):
            return "ignored: the checkout is already an order"
        if checkout.get("reminder_for") == action.version:
            return f"reminder already scheduled as {checkout.get('reminder')}"
        now = utcnow()
        due = parse_iso(action.updated_at) + timedelta(minutes=store.reminder_delay_minutes)
        due = max(due, now + MIN_REMINDER_DELAY)
        key = f"{store.id}:abandoned_checkout:{action.token}:{action.version}"
        result, _ = self._send(
            store, "abandoned_checkout", key, action.email, action.variables, send_at=due.isoformat()
        )
        replaced = self._commerce.set_reminder(store.id, action.token, result["id"], action.version)
        if replaced is False:
            self._cancel(result["id"])
            return "ignored: the checkout became an order meanwhile"
        if replaced:
            self._cancel(replaced)
        return f"reminder scheduled as {result['id']} for {due.isoformat()}"

    def _checkout_done(self, store: Store, action: CheckoutDone) -> str:
        reminder = self._commerce.complete_checkout(store.id, action.token)
        if reminder:
            return f"checkout completed; reminder {reminder}: {self._cancel(reminder)}"
        return "checkout completed"

    def _cancel(self, message_id: str) -> str:
        scheduler = self._svc.scheduler
        try:
            record = self._svc.messages.get(message_id)
        except MessageNotFoundError:
            return "gone"
        if record.status is not MessageStatus.SCHEDULED or scheduler is None:
            return record.status.value
        try:
            scheduling.cancel(record, store=self._svc.messages, scheduler=scheduler)
        except ConflictError as error:  # due within seconds: it goes out, as a reminder sent a moment early would
            return f"not cancelled: {error.message}"
        return "cancelled"


def handle_batch(
    event: dict[str, Any], context: LambdaContext, svc: Services, commerce: CommerceServices
) -> PartialItemFailureResponse:
    """``svc`` and ``commerce`` come from the function's wiring (functions/commerce_worker/app.py)."""
    worker = CommerceWorker(svc, commerce, context)

    def record_handler(record: SQSRecord) -> list[str]:
        task = CommerceTask.from_json(record.body)
        outcome = worker.process(task)
        logger.info("webhook processed", extra={"store": task.store, "topic": task.topic, "outcome": outcome})
        return outcome

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
