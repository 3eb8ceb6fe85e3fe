"""API key items: ``pk=KEY#<sha256 of the key>``, ``sk=KEY``. The key itself is never stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from postroom.core.auth import Principal, Scope, generate_key, hash_key
from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, to_item

_KNOWN_SCOPES = frozenset(s.value for s in Scope)
# A key id is the first 12 hex digits of the key's hash; an admin may shorten it to a prefix of at least this many
# digits (2^32 values, so a prefix names one key in any realistic key table, and an ambiguous one is refused).
MIN_KEY_ID_PREFIX = 8


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an admin sees of a stored key (never the key itself)."""

    key_id: str
    name: str
    tenant: str
    disabled: bool


class ApiKeyStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def create(
        self,
        *,
        name: str,
        scopes: frozenset[Scope],
        tenant: str = "default",
        key: str | None = None,
        mailboxes: frozenset[str] = frozenset(),
    ) -> str:
        """Store a new key (or import a given one, as the local stack does with its fixed dev key); returns it."""
        key = key or generate_key()
        digest = hash_key(key)
        self._ddb.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "pk": f"KEY#{digest}",
                    "sk": "KEY",
                    "key_id": digest[:12],
                    "name": name,
                    "scopes": sorted(scopes),
                    "tenant": tenant,
                    "created_at": now_iso(),
                    "disabled": False,
                    "mailboxes": sorted(m.lower() for m in mailboxes) or None,
                }
            ),
        )
        return key

    def authenticate(self, key: str) -> Principal | None:
        response = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"KEY#{hash_key(key)}", "sk": "KEY"}), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        if item.get("disabled"):
            return None
        scopes = frozenset(Scope(s) for s in item.get("scopes", []) if s in _KNOWN_SCOPES)
        mailboxes = frozenset(item.get("mailboxes") or ())
        return Principal(key_id=item["key_id"], tenant=item["tenant"], scopes=scopes, mailboxes=mailboxes)

    def matching(self, key_id: str) -> list[KeyInfo]:
        """The keys an admin's id names: the key whose id is exactly ``key_id``, or else every key whose id starts
        with it. An id shorter than :data:`MIN_KEY_ID_PREFIX` names only an exact match, so ``""`` or ``"a"`` can
        never sweep up keys (``postroom keys disable ""`` once disabled them all)."""
        wanted = key_id.strip().lower()
        if not wanted:
            return []
        found: list[KeyInfo] = []
        paginator = self._ddb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="sk = :sk AND begins_with(key_id, :p)",
            ExpressionAttributeValues=to_item({":sk": "KEY", ":p": wanted}),
        ):
            for raw in page.get("Items", []):
                item = from_item(raw)
                found.append(
                    KeyInfo(
                        key_id=item["key_id"],
                        name=item.get("name", ""),
                        tenant=item.get("tenant", ""),
                        disabled=bool(item.get("disabled")),
                    )
                )
        exact = [k for k in found if k.key_id == wanted]
        if exact:
            return exact
        return found if len(wanted) >= MIN_KEY_ID_PREFIX else []

    def disable(self, key_id: str) -> int:
        """Disable the key with exactly this id (never a prefix); returns how many were disabled (0 or 1)."""
        count = 0
        paginator = self._ddb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="sk = :sk AND key_id = :id",
            ExpressionAttributeValues=to_item({":sk": "KEY", ":id": key_id}),
        ):
            for item in page.get("Items", []):
                self._ddb.update_item(
                    TableName=self._table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET disabled = :t",
                    ExpressionAttributeValues=to_item({":t": True}),
                )
                count += 1
        return count
