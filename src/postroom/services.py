"""The objects a handler needs, built once per execution environment from validated settings.

Handlers call :func:`services`; tests and the local stack call :func:`reset_services` after changing the
environment, so nothing is read at import time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from postroom import aws
from postroom.queue import DeliveryQueue
from postroom.settings import Settings, settings_from_env
from postroom.store.keys import ApiKeyStore
from postroom.store.messages import MessageStore


@dataclass
class Services:
    settings: Settings

    @cached_property
    def messages(self) -> MessageStore:
        return MessageStore(
            dynamodb=aws.client("dynamodb"), s3=aws.client("s3"), table=self.settings.table, bucket=self.settings.bucket
        )

    @cached_property
    def keys(self) -> ApiKeyStore:
        return ApiKeyStore(aws.client("dynamodb"), self.settings.table)

    @cached_property
    def queue(self) -> DeliveryQueue:
        return DeliveryQueue(aws.client("sqs"), self.settings.queue_url, self.settings.dlq_url)


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
