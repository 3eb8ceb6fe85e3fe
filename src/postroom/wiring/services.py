"""The objects a handler needs, built once per execution environment from validated settings.

Handlers call :func:`services`; tests and the local stack call :func:`reset_services` after changing the
environment, so nothing is read at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from postroom.accept import intake
from postroom.accept.delivery_queue import DeliveryQueue
from postroom.accept.scheduling import DeliveryScheduler
from postroom.accept.uploads import UploadStore
from postroom.core import aws
from postroom.core.domain_registry import DomainRegistry, SendingDomainGate
from postroom.core.idempotency import DAY, Once
from postroom.core.key_store import ApiKeyStore
from postroom.core.message_store import MessageStore
from postroom.core.sending_pause import SendingPauses
from postroom.core.settings import Settings, settings_from_env
from postroom.mailtemplates.template_store import TemplateStore

if TYPE_CHECKING:
    from postroom.accept.intake import Accepted
    from postroom.accept.models import SendRequest
    from postroom.core.auth import Principal
    from postroom.core.errors import PostroomError

_once_lock = threading.Lock()

# How long each kind of key is remembered (see postroom.core.idempotency). API keys: 24 h, as callers are told. A
# worker's
# send result must outlive every redelivery of its message (SQS keeps it 14 days). Webhook deliveries: Shopify retries
# for 48 h. Order mails: a WooCommerce order.updated can repeat a status weeks later.
_ONCE_EXPIRY = {
    "send": DAY,
    "batch": DAY,
    "raw": DAY,
    "resend": DAY,  # Resend keeps an idempotency key 24 hours too
    "resend-batch": DAY,
    "worker-send": 15 * DAY,
    "hook-delivery": 7 * DAY,
    "commerce-mail": 90 * DAY,
}
# The same key with another body is a caller's mistake: 409 (Resend answers it as invalid_idempotent_request).
_VALIDATED_SCOPES = frozenset({"send", "batch", "raw", "resend", "resend-batch"})


@dataclass
class Services:
    settings: Settings
    _onces: dict[str, Once] = field(default_factory=dict, repr=False)

    @cached_property
    def messages(self) -> MessageStore:
        return MessageStore(
            dynamodb=aws.client("dynamodb"), s3=aws.client("s3"), table=self.settings.table, bucket=self.settings.bucket
        )

    @cached_property
    def keys(self) -> ApiKeyStore:
        return ApiKeyStore(aws.client("dynamodb"), self.settings.table)

    @cached_property
    def domain_registry(self) -> DomainRegistry:
        return DomainRegistry(aws.client("dynamodb"), self.settings.table)

    @cached_property
    def domains(self) -> SendingDomainGate:
        """The sending-domain check: SendingDomains (the seed), then the registry, cached briefly per Lambda."""
        return SendingDomainGate(self.settings.sending_domains, self.domain_registry)

    @cached_property
    def queue(self) -> DeliveryQueue:
        return DeliveryQueue(aws.client("sqs"), self.settings.queue_url, self.settings.dlq_url)

    @cached_property
    def templates(self) -> TemplateStore:
        return TemplateStore(aws.client("dynamodb"), self.settings.table)

    @cached_property
    def scheduler(self) -> DeliveryScheduler | None:
        """None when the stack has no schedule group (then send_at is refused with a clear error)."""
        s = self.settings
        if not (s.schedule_group and s.scheduler_role_arn and s.queue_arn):
            return None
        return DeliveryScheduler(
            aws.client("scheduler"), group=s.schedule_group, role_arn=s.scheduler_role_arn, queue_arn=s.queue_arn
        )

    @cached_property
    def pauses(self) -> SendingPauses | None:
        """The reputation breaker's pauses, checked on every send while the breaker is on; None while it is off."""
        if not self.settings.reputation.enabled:
            return None
        return SendingPauses(aws.client("dynamodb"), self.settings.table)

    @cached_property
    def uploads(self) -> UploadStore:
        s = self.settings
        return UploadStore(aws.client("s3"), s.bucket, max_bytes=s.upload_max_bytes, linkable=s.attachment_links)

    # -- accepting mail: the same stores, queue, templates and scheduler for every entry point --------------------
    def accept(self, request: SendRequest, principal: Principal) -> Accepted:
        return intake.accept(
            request,
            principal,
            settings=self.settings,
            store=self.messages,
            queue=self.queue,
            templates=self.templates,
            scheduler=self.scheduler,
            domains=self.domains,
            pauses=self.pauses,
            uploads=self.uploads,
        )

    def accept_many(
        self, requests: Sequence[SendRequest | PostroomError], principal: Principal
    ) -> list[Accepted | PostroomError]:
        return intake.accept_many(
            requests,
            principal,
            settings=self.settings,
            store=self.messages,
            queue=self.queue,
            templates=self.templates,
            scheduler=self.scheduler,
            domains=self.domains,
            pauses=self.pauses,
            uploads=self.uploads,
        )

    def accept_raw(self, data: bytes, principal: Principal, **envelope: Any) -> Accepted:
        """``envelope``: mail_from, recipients, delivery (see :func:`postroom.accept.intake.accept_raw`)."""
        return intake.accept_raw(
            data,
            principal,
            settings=self.settings,
            store=self.messages,
            queue=self.queue,
            domains=self.domains,
            pauses=self.pauses,
            **envelope,
        )

    def once(self, scope: str) -> Once | None:
        """The :class:`Once` for a scope (see postroom.core.idempotency); None without an idempotency table."""
        if not self.settings.idempotency_table:
            return None
        with _once_lock:
            existing = self._onces.get(scope)
            if existing is None:
                existing = self._onces[scope] = Once(
                    table=self.settings.idempotency_table,
                    dynamodb=aws.client("dynamodb"),
                    scope=scope,
                    expires_after_seconds=_ONCE_EXPIRY.get(scope, DAY),
                    validate=scope in _VALIDATED_SCOPES,
                )
            return existing


_lock = threading.Lock()
_services: Services | None = None


def services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                svc = Services(settings_from_env())
                # Touch the lazy members under the lock: cached_property is not thread-safe.
                _ = (svc.messages, svc.keys, svc.queue)
                _services = svc
    return _services


def reset_services() -> None:
    global _services
    with _lock:
        _services = None
    aws.reset_clients()
