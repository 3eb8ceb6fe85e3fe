"""Retry policy and the choice of delivery path.

``auto`` resolves to the sending domain's configured path (``SendingDomains`` entry ``domain=ses|smtp``), else to the
stack's ``DefaultDelivery``. Transient failures back off exponentially with ±10 % jitter so a burst of deferrals
against one server does not return as one burst.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from postroom.accept.models import DeliveryChoice
from postroom.core.settings import DeliveryPath, Settings


def choose_path(requested: str, sender_domain: str, settings: Settings) -> DeliveryPath:
    if requested == DeliveryChoice.SES:
        return DeliveryPath.SES
    if requested == DeliveryChoice.SMTP:
        return DeliveryPath.SMTP
    if requested == DeliveryChoice.RELAY:
        return DeliveryPath.RELAY
    return settings.delivery_for(sender_domain)


def backoff_seconds(attempt: int, settings: Settings, rng: random.Random | None = None) -> int:
    """Delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    base = settings.retry_base_seconds * (2 ** max(0, attempt - 1))
    delay = min(base, settings.retry_max_seconds)
    jitter = (rng or random).uniform(0.9, 1.1)
    return max(0, min(int(delay * jitter), settings.retry_max_seconds))


def give_up_reason(*, attempts: int, created_at: datetime, now: datetime, settings: Settings) -> str | None:
    if attempts >= settings.max_attempts:
        return f"gave up after {attempts} attempts"
    age = now - created_at
    if age >= timedelta(seconds=settings.max_age_seconds):
        return f"gave up: still undelivered {int(age.total_seconds())} s after it was accepted"
    return None


def crash_give_up_reason(*, received: int, attempts: int, settings: Settings) -> str | None:
    """Why to give up on a pointer SQS has handed over ``received`` times (its ``ApproximateReceiveCount``).

    Every deferral is one receive, but the worker gives up on deferrals after ``max_attempts``, below this threshold;
    so a count this high means receives that ended without an outcome: the function crashed or timed out on them.
    """
    if received >= settings.poison_receive_count:
        return (
            f"gave up: processing crashed or timed out repeatedly (received {received} times from the delivery queue, "
            f"{attempts} delivery attempts recorded)"
        )
    return None
