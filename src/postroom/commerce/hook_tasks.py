"""A verified webhook delivery (:class:`Hook`) and the task that queues it for the commerce worker.

The HTTP side (``postroom.api.commerce_hook_routes``) builds a Hook once the signature holds; the registry stores its
payload and queues :func:`task_body`; the worker reads it back as a ``CommerceTask``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from postroom.commerce.stores import Platform, Store
from postroom.core.clock import now_iso


@dataclass(frozen=True)
class Hook:
    platform: Platform
    store: Store
    topic: str
    delivery_id: str
    body: bytes


def task_body(hook: Hook, payload_key: str) -> str:
    return json.dumps(
        {
            "v": 1,
            "platform": hook.platform.value,
            "store": hook.store.id,
            "topic": hook.topic,
            "delivery_id": hook.delivery_id,
            "payload": payload_key,
            "received_at": now_iso(),
        }
    )
