"""Sending pauses: the state of the per-tenant reputation breaker, read where mail enters and where it leaves.

    Pause  pk=TENANT#<tenant>#PAUSE  sk=<scope>  state (open|closed), reason, opened_at, trigger_message_id, sends,
                                                 bounces, complaints, resumed_at, resumed_by

``scope`` is ``*`` (every sending domain of the tenant) or one sending domain. An open pause refuses new sends with
503 ``sending_paused`` (the accept path) and holds queued mail (the worker puts its pointer back with a delay, without
an attempt: nothing is sent, bounced or lost). An operator closes it through ``POST /v1/reputation/resume``; the
breaker then counts afresh from ``resumed_at``, so the old window cannot trip it again at once.

The breaker that opens pauses lives in postroom.events.reputation; this module is below both the accept path and the
worker so that each can read the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from postroom.core.dynamo import from_item, is_conditional_failure, to_item
from postroom.core.errors import PostroomError

__all__ = ["ALL_SCOPES", "Pause", "PauseHold", "SendingPausedError", "SendingPauses"]

ALL_SCOPES = "*"
OPEN, CLOSED = "open", "closed"


class SendingPausedError(PostroomError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "sending_paused"


@dataclass(frozen=True)
class Pause:
    scope: str
    state: str
    reason: str
    opened_at: str
    trigger_message_id: str | None = None
    sends: int = 0
    bounces: int = 0
    complaints: int = 0
    resumed_at: str | None = None
    resumed_by: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def applies_to(self, domain: str) -> bool:
        return self.scope in (ALL_SCOPES, domain.lower())

    def public(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "state": self.state,
            "reason": self.reason,
            "opened_at": self.opened_at,
            "trigger_message_id": self.trigger_message_id,
            "sends": self.sends,
            "bounces": self.bounces,
            "complaints": self.complaints,
            "resumed_at": self.resumed_at,
            "resumed_by": self.resumed_by,
        }


def _pk(tenant: str) -> str:
    return f"TENANT#{tenant}#PAUSE"


def _pause(item: dict[str, Any]) -> Pause:
    values = from_item(item)
    return Pause(
        scope=str(values["sk"]),
        state=str(values["state"]),
        reason=str(values.get("reason") or ""),
        opened_at=str(values.get("opened_at") or ""),
        trigger_message_id=values.get("trigger_message_id"),
        sends=int(values.get("sends") or 0),
        bounces=int(values.get("bounces") or 0),
        complaints=int(values.get("complaints") or 0),
        resumed_at=values.get("resumed_at"),
        resumed_by=values.get("resumed_by"),
    )


class SendingPauses:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def all(self, tenant: str) -> list[Pause]:
        """Every scope's pause record, open or closed (one consistent Query: a handful of items per tenant)."""
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=to_item({":pk": _pk(tenant)}),
            ConsistentRead=True,
        )
        return [_pause(item) for item in response.get("Items", [])]

    def blocking(self, tenant: str, domain: str) -> Pause | None:
        """The open pause that stops mail from ``domain``, if any (the tenant-wide one first)."""
        found = [pause for pause in self.all(tenant) if pause.is_open and pause.applies_to(domain)]
        return min(found, key=lambda pause: pause.scope != ALL_SCOPES) if found else None

    def check(self, tenant: str, domain: str) -> None:
        """The accept path's check: raises :class:`SendingPausedError` while a pause applies."""
        pause = self.blocking(tenant, domain)
        if pause is not None:
            raise SendingPausedError(
                f"sending is paused for {'this tenant' if pause.scope == ALL_SCOPES else pause.scope} since "
                f"{pause.opened_at}: {pause.reason}; an operator resumes it with POST /v1/reputation/resume"
            )

    def open(self, tenant: str, pause: Pause) -> bool:
        """Record an open pause unless one is already open for its scope; True when this call opened it."""
        item = {"pk": _pk(tenant), "sk": pause.scope, **{k: v for k, v in pause.public().items() if k != "scope"}}
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=to_item({k: v for k, v in item.items() if v is not None}),
                ConditionExpression="attribute_not_exists(pk) OR #state <> :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item({":open": OPEN}),
            )
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def resume(self, tenant: str, scope: str, *, by: str, at: str) -> Pause | None:
        """Close the scope's open pause; None when none was open."""
        try:
            response = self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": _pk(tenant), "sk": scope}),
                UpdateExpression="SET #state = :closed, resumed_at = :at, resumed_by = :by",
                ConditionExpression="#state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=to_item({":closed": CLOSED, ":open": OPEN, ":at": at, ":by": by}),
                ReturnValues="ALL_NEW",
            )
        except Exception as error:
            if is_conditional_failure(error):
                return None
            raise
        return _pause(response["Attributes"])


class PauseHold:
    """The worker's hold policy (``Deliverer(holds=...)``): a queued message of a paused tenant or domain waits
    ``seconds`` and is looked at again, with no attempt counted, until an operator resumes."""

    def __init__(self, pauses: SendingPauses, seconds: int) -> None:
        self._pauses = pauses
        self._seconds = seconds

    def hold_seconds(self, tenant: str, sender_domain: str) -> int | None:
        return self._seconds if self._pauses.blocking(tenant, sender_domain) is not None else None
