"""Failover between delivery paths per sending domain: SES ⇄ direct SMTP, with hysteresis.

A sending domain listed in ``POSTROOM_FAILOVER_DOMAINS`` has a primary path (what ``choose_path`` picks for it) and a
fallback (the other of SES and direct SMTP). ``failover_after`` attempts in a row on the primary that fail for a
reason of the path itself — SES throttling past the worker's retries, an account pause (``SendingPausedException``),
a configuration error (identity or configuration set), SES unreachable; for direct SMTP, every recipient deferred with
a 4xx — move the domain to the fallback. It stays there at least ``hold_seconds``; then one attempt probes the primary:
a success moves the domain back, a failure holds it on the fallback for another ``hold_seconds``. So a flapping
primary costs one probe per hold period, never a switch per message.

    Failover  pk=FAILOVER#<sending domain>  sk=STATE  active (primary|fallback), primary, fallback, failures, since,
                                                     probe_after (epoch s), reason

Each switch is logged, counted (metric ``PathSwitches``) and reported to ``on_switch`` (the wiring records a
``path_switched`` event for it). Each recipient's record names the path that carried it (``delivery``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.core.clock import now_iso
from postroom.core.delivery_results import Outcome
from postroom.core.dynamo import from_item, to_item
from postroom.core.settings import DeliveryPath
from postroom.observability.metrics import count_path_switch

if TYPE_CHECKING:
    from postroom.core.delivery_results import RecipientResult
    from postroom.core.message_record import MessageRecord

__all__ = ["FailoverRouter", "PathSwitch"]

logger = Logger(child=True)

# SES answers that say "this path is unusable now", not "this message is bad": throttling and service trouble
# (deferred by the SES agent), the account's pause, and configuration errors (bounced by it, but about the stack).
_SES_PATH_FAILURES = (
    "ThrottlingException",
    "TooManyRequestsException",
    "LimitExceededException",
    "SendingPausedException",
    "AccountSuspendedException",
    "ServiceUnavailable",
    "InternalFailure",
    "MailFromDomainNotVerified",
    "ConfigurationSetDoesNotExist",
    "NotFoundException",
    "could not be reached",
)
_FALLBACK = {DeliveryPath.SES: DeliveryPath.SMTP, DeliveryPath.SMTP: DeliveryPath.SES}


@dataclass(frozen=True)
class PathSwitch:
    domain: str
    to: DeliveryPath
    reason: str
    message_id: str
    tenant: str


class FailoverRouter:
    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        domains: frozenset[str],
        failover_after: int,
        hold_seconds: int,
        on_switch: Callable[[PathSwitch], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._domains = domains
        self._after = failover_after
        self._hold = hold_seconds
        self._on_switch = on_switch
        self._clock = clock

    def _state(self, domain: str) -> dict[str, Any]:
        item = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"FAILOVER#{domain}", "sk": "STATE"}), ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else {}

    def _save(self, domain: str, state: dict[str, Any]) -> None:
        self._ddb.put_item(TableName=self._table, Item=to_item({"pk": f"FAILOVER#{domain}", "sk": "STATE", **state}))

    def route(self, record: MessageRecord, primary: DeliveryPath) -> DeliveryPath:
        """The path for this attempt: the fallback while the domain is failed over, except for a due probe."""
        domain = record.from_address.rpartition("@")[2].lower()
        if domain not in self._domains or primary not in _FALLBACK:
            return primary
        state = self._state(domain)
        if state.get("active") != "fallback":
            return primary
        if self._clock() >= float(state.get("probe_after") or 0):
            return primary  # the hold is over: this attempt probes the primary
        return _FALLBACK[primary]

    def observe(self, record: MessageRecord, primary: DeliveryPath, used: DeliveryPath, results: list[Any]) -> None:
        """Count the attempt's outcome on the primary; switch when the hysteresis says so."""
        domain = record.from_address.rpartition("@")[2].lower()
        if domain not in self._domains or primary not in _FALLBACK or used is not primary:
            return
        sent = [result for result, agent in results if agent == used.value]
        if not sent:
            return  # every recipient was decided by a filter: nothing was learned about the path
        state = self._state(domain)
        now = self._clock()
        failure = _path_failure(used, sent)
        if failure is None:
            if state.get("active") == "fallback":
                self._switch(domain, record, primary, "primary recovered: the probe got through", now, back=True)
            elif state.get("failures"):
                self._save(domain, {**state, "failures": 0})
            return
        if state.get("active") == "fallback":  # a failed probe: hold on the fallback for another period
            self._save(domain, {**state, "probe_after": int(now + self._hold), "reason": failure})
            return
        failures = int(state.get("failures") or 0) + 1
        if failures >= self._after:
            self._switch(domain, record, primary, f"{failures} attempts in a row failed: {failure}", now, back=False)
        else:
            self._save(domain, {**state, "active": "primary", "failures": failures, "reason": failure})

    def _switch(
        self, domain: str, record: MessageRecord, primary: DeliveryPath, reason: str, now: float, *, back: bool
    ) -> None:
        to = primary if back else _FALLBACK[primary]
        self._save(
            domain,
            {
                "active": "primary" if back else "fallback",
                "primary": primary.value,
                "fallback": _FALLBACK[primary].value,
                "failures": 0,
                "since": now_iso(),
                "probe_after": int(now + self._hold),
                "reason": reason,
            },
        )
        logger.warning("delivery path switched", extra={"domain": domain, "to": to.value, "reason": reason})
        count_path_switch(to.value)
        if self._on_switch is not None:
            self._on_switch(PathSwitch(domain, to, reason, record.id, record.tenant))


def _path_failure(path: DeliveryPath, results: list[RecipientResult]) -> str | None:
    """Why the attempt says the path itself is failing, or None."""
    if path is DeliveryPath.SES:
        for result in results:
            if result.outcome in (Outcome.DEFERRED, Outcome.BOUNCED) and any(
                marker in result.reply for marker in _SES_PATH_FAILURES
            ):
                return result.reply
        return None
    if all(result.outcome is Outcome.DEFERRED for result in results):
        return results[0].reply or "deferred"
    return None
