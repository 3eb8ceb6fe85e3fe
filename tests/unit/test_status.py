"""Delivery state: message status derived from recipients, transitions guarded, retry policy bounded."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from postroom.core.settings import DeliveryPath, Settings
from postroom.core.status import InvalidTransitionError, MessageStatus, RecipientStatus, aggregate, check_transition
from postroom.deliver.path_policy import backoff_seconds, choose_path, give_up_reason

R = RecipientStatus


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [
        ([R.DELIVERED, R.DELIVERED], MessageStatus.DELIVERED),
        ([R.DELIVERED, R.DEFERRED], MessageStatus.DEFERRED),
        ([R.DELIVERED, R.BOUNCED], MessageStatus.PARTIALLY_DELIVERED),
        ([R.BOUNCED, R.FAILED], MessageStatus.BOUNCED),
        ([R.FAILED], MessageStatus.FAILED),
        ([R.PENDING, R.BOUNCED], MessageStatus.DEFERRED),
        ([R.SUPPRESSED, R.SUPPRESSED], MessageStatus.SUPPRESSED),
        ([R.DELIVERED, R.SUPPRESSED], MessageStatus.PARTIALLY_DELIVERED),
        ([R.SUPPRESSED, R.BOUNCED], MessageStatus.BOUNCED),
        ([R.SENT, R.SENT], MessageStatus.SENT),
        ([R.SENT, R.DELIVERED, R.SUPPRESSED], MessageStatus.SENT),
        ([R.SENT, R.BOUNCED], MessageStatus.PARTIALLY_DELIVERED),
        ([R.SENT, R.DEFERRED], MessageStatus.DEFERRED),
    ],
)
def test_message_status_is_derived_from_recipients(recipients: list[R], expected: MessageStatus) -> None:
    assert aggregate(recipients) is expected


def test_final_states_cannot_be_left() -> None:
    for final in (MessageStatus.DELIVERED, MessageStatus.BOUNCED, MessageStatus.FAILED):
        with pytest.raises(InvalidTransitionError):
            check_transition(final, MessageStatus.SENDING)
    check_transition(MessageStatus.DEFERRED, MessageStatus.SENDING)


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"table": "t", "bucket": "b", "queue_url": "q", "dlq_url": "d"}
    values.update(overrides)
    return Settings.model_validate(values)


def test_backoff_doubles_and_is_capped() -> None:
    s = settings(retry_base_seconds=60, retry_max_seconds=3600)
    rng = random.Random(7)
    delays = [backoff_seconds(n, s, rng) for n in range(1, 10)]
    assert 54 <= delays[0] <= 66
    assert 108 <= delays[1] <= 132
    assert all(d <= 3600 for d in delays)
    assert delays[-1] >= 3240


def test_give_up_by_attempts_or_age() -> None:
    s = settings(max_attempts=5, max_age_seconds=3600)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert give_up_reason(attempts=4, created_at=start, now=start, settings=s) is None
    assert "5 attempts" in (give_up_reason(attempts=5, created_at=start, now=start, settings=s) or "")
    late = start + timedelta(hours=2)
    assert "undelivered" in (give_up_reason(attempts=1, created_at=start, now=late, settings=s) or "")


def test_auto_path_follows_the_sending_domain_then_the_default() -> None:
    s = settings(sending_domains="shop.example,smtp.example=smtp", default_delivery="ses")
    assert choose_path("auto", "smtp.example", s) is DeliveryPath.SMTP
    assert choose_path("auto", "shop.example", s) is DeliveryPath.SES
    assert choose_path("smtp", "shop.example", s) is DeliveryPath.SMTP
