"""Self-throttling: delivery never runs faster than SES's MaxSendRate, nor faster than a set pace per recipient
domain for direct SMTP.

Rates are counted in fixed one-second windows, one DynamoDB item per key and second (``pk=PACE#<key>#<epoch
second>``, ``sk=PACE``), taken with a conditional ``UpdateItem``: every worker of every concurrent invocation draws
from the same window, so the limit holds for the whole stack, not per Lambda. Items expire through the table's TTL.

The pacer is a RecipientFilter that runs before the agents. When a window is full it waits (in process, up to
``max_wait`` seconds) for the next one - a burst is smoothed without leaving the invocation. If the wait would be
longer, the recipients are deferred with a ``4.4.5`` (mail system congestion) reply: the worker's normal retry sets the
SQS visibility timeout and the message resumes by itself. A paced deferral counts as an attempt, so sustained
overload ends in the usual give-up after MaxAttempts, never in a silent loop.

SES counts each recipient as one send, and allows short bursts above the rate; a message with more recipients than
one second's allowance fills the current window and pre-charges the following ones, so the average stays under the
rate. A worker's batch takes its slots at once (:meth:`PacingFilter.prepare`: one UpdateItem per pace key for the
whole batch, issue 21) when they fit in one window, waiting for the next window like a message would; otherwise each
message takes its own as before. SES's
MaxSendRate is read from the account (``GetAccount``) and cached; if it cannot be read the SES path is not
paced (SES's own throttling errors are still retried) and a warning says why.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.core.delivery_results import Outcome, RecipientResult
from postroom.core.dynamo import is_conditional_failure, to_item
from postroom.core.settings import DeliveryPath
from postroom.deliver.path_policy import choose_path
from postroom.observability.metrics import PACED_MARKER
from postroom.observability.ses_quota import read_account

if TYPE_CHECKING:
    from postroom.core.message_record import MessageRecord
    from postroom.core.settings import Settings

__all__ = ["AccountSendRate", "PaceWindows", "PacingFilter", "reset_rate_cache"]

logger = Logger(child=True)

WINDOW_TTL_SECONDS = 300  # a window item is useless a second after its second; TTL removes it later
MAX_WAIT_SECONDS_DEFAULT = 3.0  # per message: a burst is absorbed in process, a backlog is deferred to SQS
RATE_CACHE_SECONDS = 300  # how long the account's MaxSendRate is trusted
RATE_RETRY_SECONDS = 60  # after a failed GetAccount, when to try again
PACED_STATUS = "4.4.5"  # RFC 3463: mail system congestion (our own, here)


class PaceWindows:
    """One-second counting windows in DynamoDB, shared by every worker."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def take(self, key: str, count: int, limit: int, now: float) -> bool:
        """Take ``count`` from ``key``'s window for second ``now``, if it has room under ``limit``."""
        second = int(now)
        charge = min(count, limit)  # more than a window holds: fill this one and pre-charge the next (below)
        try:
            self._add(key, second, charge, room=limit - charge)
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        rest = count - charge
        following = second + 1
        while rest > 0:
            portion = min(rest, limit)
            self._add(key, following, portion, room=None)
            rest -= portion
            following += 1
        return True

    def used(self, key: str, now: float) -> int:
        """How much of ``key``'s window for second ``now`` is taken, read without taking any (explain's dry run)."""
        item = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"PACE#{key}#{int(now)}", "sk": "PACE"}), ConsistentRead=True
        ).get("Item")
        return int(item["n"]["N"]) if item and "n" in item else 0

    def _add(self, key: str, second: int, count: int, *, room: int | None) -> None:
        params: dict[str, Any] = {
            "TableName": self._table,
            "Key": to_item({"pk": f"PACE#{key}#{second}", "sk": "PACE"}),
            "UpdateExpression": "ADD #n :count SET expires_at = if_not_exists(expires_at, :expires)",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": to_item({":count": count, ":expires": second + WINDOW_TTL_SECONDS}),
        }
        if room is not None:
            params["ConditionExpression"] = "attribute_not_exists(#n) OR #n <= :room"
            params["ExpressionAttributeValues"].update(to_item({":room": room}))
        self._ddb.update_item(**params)


@dataclass
class _Cached:
    value: float | None
    expires: float


_rate_lock = threading.Lock()
_rate_cache: dict[int, _Cached] = {}


def reset_rate_cache() -> None:
    """Forget cached account rates (tests swap SES clients)."""
    with _rate_lock:
        _rate_cache.clear()


class AccountSendRate:
    """SES's MaxSendRate for the account, from ``GetAccount``, cached per execution environment."""

    def __init__(self, sesv2: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._ses = sesv2
        self._clock = clock

    def __call__(self) -> float | None:
        now = self._clock()
        key = id(self._ses)
        cached = _rate_cache.get(key)
        if cached is not None and cached.expires > now:
            return cached.value
        from botocore.exceptions import BotoCoreError, ClientError

        with _rate_lock:
            try:
                value: float | None = read_account(self._ses).max_send_rate or None
                expires = now + RATE_CACHE_SECONDS
            # Missing permission, SES unreachable, or an emulator without GetAccount (moto raises
            # NotImplementedError in process): delivery goes on unpaced rather than stopping.
            except (ClientError, BotoCoreError, NotImplementedError) as error:
                logger.warning(
                    "SES MaxSendRate could not be read (ses:GetAccount); SES sends are not paced until it can",
                    extra={"error": str(error)[:300]},
                )
                value, expires = None, now + RATE_RETRY_SECONDS
            _rate_cache[key] = _Cached(value, expires)
            return value


class PacingFilter:
    """RecipientFilter: defers the recipients that would exceed SES's rate or a recipient domain's pace."""

    def __init__(
        self,
        settings: Settings,
        windows: PaceWindows,
        ses_rate: Callable[[], float | None],
        *,
        max_wait: float = MAX_WAIT_SECONDS_DEFAULT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._windows = windows
        self._ses_rate = ses_rate
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._reserved: dict[str, int] = {}  # pace key -> slots the batch took and its messages have not used yet

    def prepare(self, records: list[MessageRecord]) -> None:
        """Take the slots a batch's records will ask for, one UpdateItem per pace key, when they fit in the current
        window (a batch larger than a window is paced message by message, waiting for the next windows)."""
        wanted: dict[tuple[str, int], int] = defaultdict(int)
        for record in records:
            pending = [r.address for r in record.pending()]
            if not pending:
                continue
            path = choose_path(record.delivery, record.from_address.rpartition("@")[2], self._settings)
            if path is DeliveryPath.SES:
                limit = self._ses_limit()
                if limit is not None:
                    wanted[("ses", limit)] += len(pending)
                continue
            domain_limit = _whole(self._settings.domain_rate_per_second)
            if domain_limit is not None:
                for domain in {address.rpartition("@")[2].lower() for address in pending}:
                    wanted[(f"smtp:{domain}", domain_limit)] += 1
        self._reserved = {}
        for (key, limit), count in wanted.items():
            # Waits for the next window when this one has no room for the whole batch, as one message would (up to
            # max_wait); if that fails too, the batch's messages take their slots one by one (and may be deferred).
            if count <= limit and self._take(key, count, limit, self._clock() + self._max_wait):
                self._reserved[key] = count

    def screen(self, record: MessageRecord, recipients: list[str]) -> list[RecipientResult]:
        if not recipients:
            return []
        deadline = self._clock() + self._max_wait
        path = choose_path(record.delivery, record.from_address.rpartition("@")[2], self._settings)
        if path is DeliveryPath.SES:
            limit = self._ses_limit()
            if limit is None or self._take("ses", len(recipients), limit, deadline):
                return []
            text = f"Amazon SES send rate ({limit}/s) reached; paced by Postroom, retrying"
            return [self._deferred(address, text, "ses") for address in recipients]
        limit = _whole(self._settings.domain_rate_per_second)
        if limit is None:
            return []
        by_domain: dict[str, list[str]] = defaultdict(list)
        for address in recipients:
            by_domain[address.rpartition("@")[2].lower()].append(address)
        results: list[RecipientResult] = []
        for domain, addresses in by_domain.items():
            # One SMTP transaction per message and domain: the pace counts messages, not recipients.
            if not self._take(f"smtp:{domain}", 1, limit, deadline):
                text = f"pace for {domain} ({limit} messages/s) reached; paced by Postroom, retrying"
                results.extend(self._deferred(address, text, "smtp") for address in addresses)
        return results

    def outlook(self, path: DeliveryPath, recipients: list[str]) -> dict[str, object]:
        """What pacing would do to a message now, without taking a slot: the limits that apply, how full their
        current windows are, and the delay the pacer would add (0, a wait inside the invocation, or a deferral)."""
        now = self._clock()
        if path is DeliveryPath.SES:
            keys = {"ses": (self._ses_limit(), len(recipients))}
        else:
            limit = _whole(self._settings.domain_rate_per_second)
            domains = sorted({address.rpartition("@")[2].lower() for address in recipients})
            keys = {f"smtp:{domain}": (limit, 1) for domain in domains}
        windows: list[dict[str, object]] = []
        delay = 0.0
        for key, (limit, count) in keys.items():
            if limit is None:
                windows.append({"key": key, "limit_per_second": None, "used": None})
                continue
            used = self._windows.used(key, now)
            windows.append({"key": key, "limit_per_second": limit, "used": used})
            if used + min(count, limit) > limit:
                delay = max(delay, math.floor(now) + 1 - now)
            # More than one window's worth pre-charges the following seconds (see PaceWindows.take).
            delay = max(delay, float(max(0, math.ceil(count / limit) - 1)))
        deferred = delay > self._max_wait
        return {"windows": windows, "delay_seconds": round(delay, 3), "deferred": deferred}

    def _ses_limit(self) -> int | None:
        configured = _whole(self._settings.ses_max_send_rate)
        return configured if configured is not None else _whole(self._ses_rate() or 0)

    def _take(self, key: str, count: int, limit: int, deadline: float) -> bool:
        if self._reserved.get(key, 0) >= count:  # taken for the whole batch by prepare()
            self._reserved[key] -= count
            return True
        while True:
            now = self._clock()
            if self._windows.take(key, count, limit, now):
                return True
            next_window = math.floor(now) + 1
            if next_window > deadline:
                logger.info("paced: deferring", extra={"pace_key": key, "limit": limit})
                return False
            self._sleep(max(0.0, next_window - now))

    @staticmethod
    def _deferred(address: str, text: str, kind: str) -> RecipientResult:
        return RecipientResult(
            address,
            Outcome.DEFERRED,
            reply=f"{PACED_STATUS} {text}",
            enhanced_status=PACED_STATUS,
            extra={PACED_MARKER: kind},
        )


def _whole(rate: float) -> int | None:
    """A per-second rate as a window size: None for 0 (unpaced), at least 1 otherwise (SES sandbox: 1/s)."""
    if rate <= 0:
        return None
    return max(1, math.floor(rate))
