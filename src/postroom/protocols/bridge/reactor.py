"""Twisted's reactor on a background thread, so the IMAP and POP3 listeners live beside the asyncio SMTP ones.

The reactor is process-wide and cannot be restarted once stopped, so it is started once, as a daemon thread, and
listeners come and go on it (a test session starts many bridges in one process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_lock = threading.Lock()
_thread: threading.Thread | None = None


def reactor() -> Any:
    from twisted.internet import reactor as twisted_reactor

    return twisted_reactor


def ensure_running() -> None:
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        the_reactor = reactor()
        # Blocking API calls run on the reactor's thread pool: a handful is plenty for one user's mail clients.
        the_reactor.suggestThreadPoolSize(8)
        _thread = threading.Thread(
            target=the_reactor.run, kwargs={"installSignalHandlers": False}, name="postroom-reactor", daemon=True
        )
        _thread.start()


def call(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` on the reactor thread and wait for its result (Deferreds are waited for too)."""
    from twisted.internet.threads import blockingCallFromThread

    ensure_running()
    result: T = blockingCallFromThread(reactor(), function, *args)
    return result
