"""Webhook subscriptions and their delivery history in the single table.

    Subscription  pk=TENANT#<tenant>#WH            sk=<wh_ id>     url, event_types, secret, dialect, enabled, failure
                                                                   counters
    Attempt       pk=TENANT#<tenant>#WH#<wh_ id>   sk=<att_ id>    event id and type, attempt number, HTTP status,
                                                                   response excerpt, duration, error, expires_at (TTL)

The secret is stored as given: the sender must know it to sign (HMAC is symmetric), as with every Standard Webhooks
sender. The table is encrypted at rest and only the API and the webhook sender's roles can read it. A ``sendgrid``
subscription's secret is an ECDSA private key instead (see postroom.webhooks.payload_dialects): only its public
verification key is ever shown.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from postroom.core.clock import isoformat, parse_iso, utcnow
from postroom.core.dynamo import from_item, is_conditional_failure, to_item
from postroom.core.ids import ulid
from postroom.webhooks.payload_dialects import Dialect, supports, verification_key

ALL_EVENTS = "*"
ATTEMPT_RETENTION = timedelta(days=30)


class Subscription(BaseModel):
    id: str
    url: str
    event_types: list[str] = Field(default_factory=lambda: [ALL_EVENTS])
    secret: str
    description: str | None = None
    # Absent on subscriptions made before dialects existed: they keep today's Standard Webhooks payloads.
    dialect: Dialect = Dialect.STANDARD
    enabled: bool = True
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    failing_since: str | None = None
    last_success_at: str | None = None
    last_failure_at: str | None = None
    created_at: str
    updated_at: str

    def wants(self, event_type: str) -> bool:
        wanted = ALL_EVENTS in self.event_types or event_type in self.event_types
        return wanted and supports(self.dialect.value, event_type)

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        if self.dialect is Dialect.SENDGRID:
            # The private key never leaves: the receiver verifies with the public key, as with SendGrid's own.
            return self.model_dump(mode="json", exclude={"secret"}) | {
                "verification_key": verification_key(self.secret)
            }
        return self.model_dump(mode="json", exclude=None if with_secret else {"secret"})


class Attempt(BaseModel):
    id: str
    event_id: str
    event_type: str
    attempt: int
    at: str
    ok: bool
    status_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    response: str | None = Field(default=None, description="The first KB of the receiver's answer.")
    outcome: str = Field(description="delivered, retrying, gave_up, or skipped (subscription gone or disabled).")


def _pk(tenant: str) -> str:
    return f"TENANT#{tenant}#WH"


def _attempts_pk(tenant: str, subscription_id: str) -> str:
    return f"TENANT#{tenant}#WH#{subscription_id}"


class SubscriptionNotFoundError(LookupError):
    pass


class WebhookStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def create(
        self,
        tenant: str,
        *,
        url: str,
        event_types: list[str],
        secret: str,
        description: str | None,
        dialect: Dialect = Dialect.STANDARD,
    ) -> Subscription:
        now = isoformat(utcnow())
        subscription = Subscription(
            id=f"wh_{ulid()}",
            url=url,
            event_types=event_types,
            secret=secret,
            description=description,
            dialect=dialect,
            created_at=now,
            updated_at=now,
        )
        self._ddb.put_item(
            TableName=self._table,
            Item=to_item({"pk": _pk(tenant), "sk": subscription.id, **subscription.model_dump(mode="json")}),
            ConditionExpression="attribute_not_exists(pk)",
        )
        return subscription

    def get(self, tenant: str, subscription_id: str) -> Subscription:
        item = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": _pk(tenant), "sk": subscription_id}), ConsistentRead=True
        ).get("Item")
        if item is None:
            raise SubscriptionNotFoundError(subscription_id)
        return _subscription(item)

    def list(self, tenant: str) -> list[Subscription]:
        found: list[Subscription] = []
        for page in self._ddb.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=to_item({":pk": _pk(tenant)}),
        ):
            found.extend(_subscription(item) for item in page.get("Items", []))
        return found

    def delete(self, tenant: str, subscription_id: str) -> bool:
        response = self._ddb.delete_item(
            TableName=self._table, Key=to_item({"pk": _pk(tenant), "sk": subscription_id}), ReturnValues="ALL_OLD"
        )
        return "Attributes" in response

    def update(self, tenant: str, subscription_id: str, **changes: Any) -> Subscription:
        """Set the given fields (url, event_types, description, enabled); enabling again clears the failure record."""
        changes = {name: value for name, value in changes.items() if value is not None}
        changes["updated_at"] = isoformat(utcnow())
        removals: list[str] = []
        if changes.get("enabled") is True:
            changes["consecutive_failures"] = 0
            removals = ["disabled_reason", "failing_since"]
        names = {f"#{name}": name for name in changes} | {f"#{name}": name for name in removals}
        expression = "SET " + ", ".join(f"#{name} = :{name}" for name in changes)
        if removals:
            expression += " REMOVE " + ", ".join(f"#{name}" for name in removals)
        try:
            response = self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": _pk(tenant), "sk": subscription_id}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item({f":{name}": value for name, value in changes.items()}),
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                raise SubscriptionNotFoundError(subscription_id) from None
            raise
        return _subscription(response["Attributes"])

    # --- delivery bookkeeping ------------------------------------------------------------------------------------
    def succeeded(self, tenant: str, subscription_id: str) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item({"pk": _pk(tenant), "sk": subscription_id}),
            UpdateExpression="SET consecutive_failures = :zero, last_success_at = :now REMOVE failing_since",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":zero": 0, ":now": isoformat(utcnow())}),
        )

    def failed(self, tenant: str, subscription_id: str, *, min_failures: int, after_seconds: int) -> bool:
        """Count a failed attempt; disables the subscription (and returns True) once it has failed at least
        ``min_failures`` times in a row over at least ``after_seconds``."""
        now = utcnow()
        key = to_item({"pk": _pk(tenant), "sk": subscription_id})
        response = self._ddb.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression="ADD consecutive_failures :one "
            "SET last_failure_at = :now, failing_since = if_not_exists(failing_since, :now)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":one": 1, ":now": isoformat(now)}),
            ReturnValues="ALL_NEW",
        )
        current = _subscription(response["Attributes"])
        since = parse_iso(current.failing_since) if current.failing_since else now
        if not current.enabled or current.consecutive_failures < min_failures:
            return False
        if now - since < timedelta(seconds=after_seconds):
            return False
        reason = (
            f"disabled automatically at {isoformat(now)}: {current.consecutive_failures} failed attempts in a row "
            f"since {current.failing_since}"
        )
        self._ddb.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression="SET enabled = :false, disabled_reason = :reason, updated_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":false": False, ":reason": reason, ":now": isoformat(now)}),
        )
        return True

    def add_attempt(self, tenant: str, subscription_id: str, attempt: Attempt) -> None:
        expires = int((datetime.now(UTC) + ATTEMPT_RETENTION).timestamp())
        self._ddb.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "pk": _attempts_pk(tenant, subscription_id),
                    "sk": attempt.id,
                    **attempt.model_dump(mode="json"),
                    "expires_at": expires,
                }
            ),
        )

    def attempts(
        self, tenant: str, subscription_id: str, *, limit: int = 50, before: str | None = None
    ) -> tuple[builtins.list[Attempt], str | None]:
        """Newest first; ``before`` is the id of the last attempt of the previous page."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk" + (" AND sk < :before" if before else ""),
            "ExpressionAttributeValues": to_item(
                {":pk": _attempts_pk(tenant, subscription_id)} | ({":before": before} if before else {})
            ),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        response = self._ddb.query(**params)
        found = [
            Attempt.model_validate({k: v for k, v in from_item(item).items() if k not in ("pk", "sk", "expires_at")})
            for item in response.get("Items", [])
        ]
        return found, (found[-1].id if found and "LastEvaluatedKey" in response else None)


def _subscription(item: dict[str, Any]) -> Subscription:
    values = from_item(item)
    values["consecutive_failures"] = int(values.get("consecutive_failures", 0))
    return Subscription.model_validate({k: v for k, v in values.items() if k not in ("pk", "sk")})


def attempt_id() -> str:
    return f"att_{ulid()}"
