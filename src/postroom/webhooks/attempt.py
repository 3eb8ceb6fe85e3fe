"""One attempt to deliver one event to one subscription, and what happens next.

Retries follow the configured schedule (by default Standard Webhooks' 5 s … 10 h, about 28 hours in all); each
attempt is kept in the subscription's history. The body is ``{"type", "timestamp", "data": <the event>}`` and the
``webhook-id`` is the event id, the same on every retry — or the subscription's dialect's body and signature
(postroom.webhooks.payload_dialects). A batching dialect (SendGrid's) gets the events of one SQS batch for one
subscription in one request (:meth:`WebhookDeliverer.deliver_group`); each event keeps its own attempt record, retry
and outcome.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from postroom.core.clock import now_iso
from postroom.webhooks import transport
from postroom.webhooks.payload_dialects import BATCHING, body_and_headers
from postroom.webhooks.subscriptions import Attempt, Subscription, SubscriptionNotFoundError, attempt_id
from postroom.webhooks.url_guard import Resolve, UnsafeUrlError, check_url

if TYPE_CHECKING:
    from postroom.core.event_settings import EventSettings
    from postroom.events.event_model import Event
    from postroom.events.event_store import EventStore
    from postroom.webhooks.fanout import WebhookTask
    from postroom.webhooks.subscriptions import WebhookStore

logger = Logger(child=True)

Post = Callable[..., transport.Response]


@dataclass(frozen=True)
class Decision:
    outcome: str  # delivered, retrying, gave_up, skipped
    retry_in: int | None = None
    dead_letter_reason: str | None = None


class WebhookDeliverer:
    def __init__(
        self,
        settings: EventSettings,
        store: WebhookStore,
        events: EventStore,
        *,
        post: Post = transport.post,
        resolve: Resolve = socket.getaddrinfo,
    ) -> None:
        self._settings = settings
        self._store = store
        self._events = events
        self._post = post
        self._resolve = resolve

    def deliver(self, task: WebhookTask, attempt: int) -> Decision:
        return self.deliver_group([(task, attempt)])[0]

    def batches(self, tenant: str, subscription_id: str) -> bool:
        """Whether the subscription's dialect takes several events per request."""
        try:
            return self._store.get(tenant, subscription_id).dialect.value in BATCHING
        except SubscriptionNotFoundError:
            return False

    def deliver_group(self, tasks: list[tuple[WebhookTask, int]]) -> list[Decision]:
        """Tasks of one subscription (all of one tenant and subscription id) in one request; one Decision each.
        Only a batching dialect is ever given more than one."""
        first = tasks[0][0]
        try:
            subscription = self._store.get(first.tenant, first.subscription_id)
        except SubscriptionNotFoundError:
            return [Decision("skipped")] * len(tasks)  # deleted since the event: nothing to record it in
        decisions: list[Decision | None] = [None] * len(tasks)
        live: list[tuple[int, WebhookTask, int, Event]] = []
        for index, (task, attempt) in enumerate(tasks):
            event = self._events.get(task.tenant, task.event_id)
            if event is None:
                logger.warning("webhook event no longer exists", extra={"event_id": task.event_id})
                decisions[index] = Decision("skipped")
            elif not subscription.enabled:
                self._remember(task, event, attempt, "skipped", error="the subscription is disabled")
                decisions[index] = Decision("skipped")
            else:
                live.append((index, task, attempt, event))
        if live:
            response = self._send(subscription, [event for _, _, _, event in live])
            for index, task, attempt, event in live:
                decisions[index] = self._outcome(subscription, task, attempt, event, response)
        return [decision or Decision("skipped") for decision in decisions]

    def _send(self, subscription: Subscription, events: list[Event]) -> transport.Response:
        body, headers = body_and_headers(subscription.dialect.value, events, subscription.secret, int(time.time()))
        try:
            target = check_url(
                subscription.url, allow_private=self._settings.webhook_allow_private, resolve=self._resolve
            )
        except UnsafeUrlError as exc:
            return transport.Response(None, "", f"refused: {exc}", 0)
        return self._post(target, body, headers, timeout=self._settings.webhook_timeout_seconds)

    def _outcome(
        self, subscription: Subscription, task: WebhookTask, attempt: int, event: Event, response: transport.Response
    ) -> Decision:
        if response.ok:
            self._store.succeeded(task.tenant, subscription.id)
            self._remember(task, event, attempt, "delivered", response=response)
            return Decision("delivered")

        disabled = self._store.failed(
            task.tenant,
            subscription.id,
            min_failures=self._settings.webhook_disable_min_failures,
            after_seconds=self._settings.webhook_disable_after_seconds,
        )
        if disabled:
            logger.warning(
                "webhook subscription disabled after repeated failures", extra={"subscription": subscription.id}
            )
        last = attempt >= self._settings.webhook_max_attempts
        if last or disabled:
            self._remember(task, event, attempt, "gave_up", response=response)
            why = "the subscription was disabled" if disabled else f"gave up after {attempt} attempts"
            return Decision("gave_up", dead_letter_reason=f"{why}; last: {_summary(response)}")
        self._remember(task, event, attempt, "retrying", response=response)
        return Decision("retrying", retry_in=self._settings.webhook_retry_schedule[attempt - 1])

    def _remember(
        self,
        task: WebhookTask,
        event: Event,
        attempt: int,
        outcome: str,
        *,
        response: transport.Response | None = None,
        error: str | None = None,
    ) -> None:
        self._store.add_attempt(
            task.tenant,
            task.subscription_id,
            Attempt(
                id=attempt_id(),
                event_id=event.id,
                event_type=event.type.value,
                attempt=attempt,
                at=now_iso(),
                ok=bool(response and response.ok),
                status_code=response.status if response else None,
                duration_ms=response.duration_ms if response else None,
                error=error or (response.error if response else None),
                response=(response.body or None) if response else None,
                outcome=outcome,
            ),
        )


def _summary(response: transport.Response) -> str:
    return f"HTTP {response.status}" if response.status is not None else (response.error or "no answer")
