"""The per-tenant reputation breaker: rolling bounce and complaint rates from Postroom's own events, per tenant and per
sending domain; crossing a threshold pauses that tenant's (or that domain's) sending before SES reviews the account.

    Counts  pk=TENANT#<tenant>#REP#<scope>  sk=<bucket start, epoch seconds, 12 digits>  sends, bounces, complaints,
                                                                                     expires_at (TTL)

A *send* is a recipient outcome (``delivered`` or ``bounced``); a *bounce* a hard bounce (what SES's bounce rate
counts); a *complaint* a ``complained`` event. Counts go into buckets of ``window/24`` and the rate is taken over the
buckets of the last window, from the scope's last resume at the earliest. The breaker is evaluated as each bounce or
complaint is recorded, so it trips on the event that crosses the threshold (given ``min_volume`` sends in the window):
its reaction time is that of the event pipeline, not of a schedule.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.core.clock import isoformat, parse_iso
from postroom.core.dynamo import from_item, to_item
from postroom.core.sending_pause import ALL_SCOPES, Pause, SendingPauses
from postroom.events.event_model import Event, EventType, new_event_id

if TYPE_CHECKING:
    from postroom.core.reputation_settings import ReputationSettings

__all__ = ["Rates", "ReputationBreaker"]

logger = Logger(child=True)

_SEND_TYPES = frozenset({EventType.DELIVERED, EventType.BOUNCED})


def _pk(tenant: str, scope: str) -> str:
    return f"TENANT#{tenant}#REP#{scope}"


class Rates:
    def __init__(self, sends: int, bounces: int, complaints: int) -> None:
        self.sends = sends
        self.bounces = bounces
        self.complaints = complaints

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sends if self.sends else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sends if self.sends else 0.0

    def public(self) -> dict[str, object]:
        return {
            "sends": self.sends,
            "bounces": self.bounces,
            "complaints": self.complaints,
            "bounce_rate": round(self.bounce_rate, 6),
            "complaint_rate": round(self.complaint_rate, 6),
        }


class ReputationBreaker:
    def __init__(
        self,
        dynamodb: Any,
        table: str,
        settings: ReputationSettings,
        pauses: SendingPauses,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._settings = settings
        self._pauses = pauses
        self._clock = clock

    # -- counting --------------------------------------------------------------------------------------------------
    def observe(self, tenant: str, events: list[Event]) -> list[Event]:
        """Count the events; returns a ``sending_paused`` event for each scope this made trip."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: {"sends": 0, "bounces": 0, "complaints": 0})
        alarming: dict[str, Event] = {}  # scope → the bounce or complaint that may have tipped it
        for event in events:
            scopes = [ALL_SCOPES] + ([event.sender_domain] if event.sender_domain else [])
            for scope in scopes:
                if event.type in _SEND_TYPES:
                    counts[scope]["sends"] += 1
                if event.type is EventType.BOUNCED and event.details.get("bounce_type") == "hard":
                    counts[scope]["bounces"] += 1
                    alarming[scope] = event
                if event.type is EventType.COMPLAINED:
                    counts[scope]["complaints"] += 1
                    alarming[scope] = event
        now = self._clock()
        for scope, added in counts.items():
            if any(added.values()):
                self._add(tenant, scope, added, now)
        tripped = []
        for scope, trigger in alarming.items():
            paused = self._evaluate(tenant, scope, trigger, now)
            if paused is not None:
                tripped.append(paused)
        return tripped

    def _add(self, tenant: str, scope: str, added: dict[str, int], now: float) -> None:
        bucket = int(now) - int(now) % self._settings.bucket_seconds
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item({"pk": _pk(tenant, scope), "sk": f"{bucket:012d}"}),
            UpdateExpression="ADD sends :s, bounces :b, complaints :c SET expires_at = :e",
            ExpressionAttributeValues=to_item(
                {
                    ":s": added["sends"],
                    ":b": added["bounces"],
                    ":c": added["complaints"],
                    ":e": bucket + 2 * self._settings.window_seconds,
                }
            ),
        )

    def rates(self, tenant: str, scope: str, *, since: float | None = None) -> Rates:
        """The scope's counts over the window (from ``since``, a resume, when that is later)."""
        now = self._clock()
        start = now - self._settings.window_seconds
        if since is not None:
            start = max(start, since)
        # A bucket counts when it began at or after the start, rounded down to its bucket: at most one bucket of
        # the counts before a resume can remain, and it ages out with the window.
        first = int(start) - int(start) % self._settings.bucket_seconds
        if since is not None and first < since:
            first += self._settings.bucket_seconds
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk >= :first",
            ExpressionAttributeValues=to_item({":pk": _pk(tenant, scope), ":first": f"{first:012d}"}),
            ConsistentRead=True,
        )
        sends = bounces = complaints = 0
        for item in response.get("Items", []):
            values = from_item(item)
            sends += int(values.get("sends") or 0)
            bounces += int(values.get("bounces") or 0)
            complaints += int(values.get("complaints") or 0)
        return Rates(sends, bounces, complaints)

    def _evaluate(self, tenant: str, scope: str, trigger: Event, now: float) -> Event | None:
        previous = {pause.scope: pause for pause in self._pauses.all(tenant)}.get(scope)
        if previous is not None and previous.is_open:
            return None
        since = parse_iso(previous.resumed_at).timestamp() if previous and previous.resumed_at else None
        rates = self.rates(tenant, scope, since=since)
        reason = self._breach(rates)
        if reason is None:
            return None
        at = isoformat(datetime.fromtimestamp(now, UTC))
        pause = Pause(
            scope=scope,
            state="open",
            reason=reason,
            opened_at=at,
            trigger_message_id=trigger.message_id,
            sends=rates.sends,
            bounces=rates.bounces,
            complaints=rates.complaints,
        )
        if not self._pauses.open(tenant, pause):
            return None  # another worker opened it first: its event is the one
        logger.warning("reputation breaker opened", extra={"tenant": tenant, "scope": scope, "reason": reason})
        return Event(
            id=new_event_id(),
            type=EventType.SENDING_PAUSED,
            message_id=trigger.message_id,
            occurred_at=at,
            recorded_at=at,
            source="postroom",
            details={"scope": scope, "reason": reason, **rates.public()},
        )

    def _breach(self, rates: Rates) -> str | None:
        s = self._settings
        if rates.sends < s.min_volume:
            return None
        if rates.bounce_rate >= s.bounce_rate:
            return f"bounce rate {rates.bounce_rate:.2%} ({rates.bounces}/{rates.sends}) reached {s.bounce_rate:.2%}"
        if rates.complaint_rate >= s.complaint_rate:
            return (
                f"complaint rate {rates.complaint_rate:.3%} ({rates.complaints}/{rates.sends}) reached "
                f"{s.complaint_rate:.3%}"
            )
        return None
