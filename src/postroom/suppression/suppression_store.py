"""Suppression items: ``pk=TENANT#<tenant>#SUP``, ``sk=<scope>#<address>``.

``scope`` is ``*`` (every sending domain of the tenant), a sending domain (``shop.example``) or a domain and a topic
(``shop.example:newsletter``). A scope never contains ``#``, so the first ``#`` separates it from the address (which
may). Addresses are compared lower-case: mailbox providers treat local parts case-insensitively, and a suppression
that case could dodge would not protect the sender's reputation.

A send checks at most three keys per recipient with one BatchGetItem, whatever the list's size.
"""

from __future__ import annotations

import base64
import binascii
import builtins
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, is_conditional_failure, to_item

ALL_DOMAINS = "*"
_BATCH_GET_MAX = 100  # DynamoDB's limit of keys per BatchGetItem


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


class Suppression(BaseModel):
    address: str
    domain: str | None = Field(default=None, description="The sending domain it applies to; None: all of them.")
    topic: str | None = Field(default=None, description="With a domain: only messages sent with this topic.")
    reason: SuppressionReason
    message_id: str | None = Field(default=None, description="The message whose bounce or complaint added it.")
    details: str | None = None
    created_at: str = Field(default_factory=now_iso)

    @property
    def scope(self) -> str:
        return scope_of(self.domain, self.topic)


def scope_of(domain: str | None, topic: str | None = None) -> str:
    if not domain:
        return ALL_DOMAINS
    return f"{domain.lower()}:{topic}" if topic else domain.lower()


def normalise(address: str) -> str:
    return address.strip().lower()


def _pk(tenant: str) -> str:
    return f"TENANT#{tenant}#SUP"


def encode_cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(sk.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor this API returned") from None


class SuppressionStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def add(self, tenant: str, entry: Suppression, *, replace: bool = False) -> bool:
        """Store an entry; returns False when one already existed for that address and scope (kept as it was unless
        ``replace``: the first reason and source message are the useful ones)."""
        entry = entry.model_copy(update={"address": normalise(entry.address)})
        item = {"pk": _pk(tenant), "sk": f"{entry.scope}#{entry.address}", **entry.model_dump(mode="json")}
        params: dict[str, Any] = {"TableName": self._table, "Item": to_item(item)}
        if not replace:
            params["ConditionExpression"] = "attribute_not_exists(pk)"
        try:
            self._ddb.put_item(**params)
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def remove(self, tenant: str, address: str, *, domain: str | None = None, topic: str | None = None) -> bool:
        response = self._ddb.delete_item(
            TableName=self._table,
            Key=to_item({"pk": _pk(tenant), "sk": f"{scope_of(domain, topic)}#{normalise(address)}"}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in response

    def list(
        self,
        tenant: str,
        *,
        domain: str | None = None,
        address: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[Suppression], str | None]:
        """A page of entries in (scope, address) order, optionally one domain's (``*`` for the all-domains entries) or
        one address's; returns the entries and the cursor of the next page (None at the end)."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": _pk(tenant)}
        if domain:
            condition += " AND begins_with(sk, :scope)"
            values[":scope"] = f"{domain.lower()}#" if domain != ALL_DOMAINS else f"{ALL_DOMAINS}#"
        params: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": condition}
        if address:
            params["FilterExpression"] = "address = :address"
            values[":address"] = normalise(address)
        params["ExpressionAttributeValues"] = to_item(values)
        if after:
            params["ExclusiveStartKey"] = to_item({"pk": _pk(tenant), "sk": decode_cursor(after)})
        entries: list[Suppression] = []
        last_sk: str | None = None
        while True:
            response = self._ddb.query(**params, Limit=max(limit - len(entries), 1) if not address else 1000)
            for item in response.get("Items", []):
                if len(entries) == limit:
                    return entries, encode_cursor(last_sk) if last_sk else None
                entries.append(_entry(item))
                last_sk = item["sk"]["S"]
            if "LastEvaluatedKey" not in response:
                return entries, None
            if len(entries) == limit:
                return entries, encode_cursor(last_sk) if last_sk else None
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def check(
        self, tenant: str, addresses: builtins.list[str], *, domain: str, topic: str | None = None
    ) -> dict[str, Suppression]:
        """The entries that stop mail from ``domain`` (and ``topic``) to any of ``addresses``: lower-cased address ->
        the entry (the broadest scope when several apply)."""
        scopes = [ALL_DOMAINS, scope_of(domain)] + ([scope_of(domain, topic)] if topic else [])
        keys = list(dict.fromkeys((scope, normalise(address)) for address in addresses for scope in scopes))
        found: dict[str, Suppression] = {}
        for start in range(0, len(keys), _BATCH_GET_MAX):
            request = {
                self._table: {
                    "Keys": [
                        to_item({"pk": _pk(tenant), "sk": f"{scope}#{address}"})
                        for scope, address in keys[start : start + _BATCH_GET_MAX]
                    ],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self._ddb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    entry = _entry(item)
                    current = found.get(entry.address)
                    if current is None or len(entry.scope) < len(current.scope):
                        found[entry.address] = entry
                request = response.get("UnprocessedKeys") or {}
        return found


def _entry(item: dict[str, Any]) -> Suppression:
    values = from_item(item)
    return Suppression.model_validate({k: v for k, v in values.items() if k not in ("pk", "sk")})
