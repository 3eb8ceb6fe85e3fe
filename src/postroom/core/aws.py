"""boto3 clients, created once per execution environment (and per process in the local stack).

Clients are built lazily so importing a handler stays cheap, and under a lock because creating clients from the
shared default session is not thread-safe (the local stack serves HTTP and polls SQS from several threads).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.client import BaseClient

_lock = threading.Lock()
_clients: dict[str, BaseClient] = {}


def client(service: str) -> Any:
    existing = _clients.get(service)
    if existing is not None:
        return existing
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            # "standard" retry mode retries throttling and transient 5xx with backoff; adaptive is not needed here.
            _clients[service] = boto3.client(service, config=Config(retries={"mode": "standard", "max_attempts": 4}))
        return _clients[service]


def reset_clients() -> None:
    """Forget cached clients (tests point the endpoint elsewhere between sessions)."""
    with _lock:
        _clients.clear()
