"""API key items: ``pk=KEY#<sha256 of the key>``, ``sk=KEY``. The key itself is never stored.

Each key is also listed in gsi1 under ``gsi1pk=TENANT#<tenant>#KEY``, ``gsi1sk=<key id>``: the keys API finds a
tenant's keys, and one key by its exact id, with a Query (the send API may not Scan the table). Keys stored before
that index entry existed get it the first time they authenticate.

A key may carry an expiry (``expires_at``, ISO 8601): from then on it authenticates nothing. Rotation is built on it:
the new key is stored first, then the old one is given an expiry at the end of the grace period, so callers can swap
keys without a moment in which neither works.

Authentication reads the key's item once per :data:`KEY_CACHE_SECONDS` per execution environment (issue 21: the
lookup was one GetItem per request). Only found items are cached, keyed by the key's hash (the key itself is never
kept), and every use re-checks ``disabled`` and ``expires_at`` against the clock, so a rotation's grace period ends
exactly on time. Disabling or rotating through this store drops the entry at once; a key disabled from another
execution environment (another Lambda, the CLI) stops working here within :data:`KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from postroom.core.auth import Principal, Scope, generate_key, hash_key
from postroom.core.clock import isoformat, now_iso, parse_iso, utcnow
from postroom.core.dynamo import from_item, to_item

_KNOWN_SCOPES = frozenset(s.value for s in Scope)
# A key id is the first 12 hex digits of the key's hash; an admin may shorten it to a prefix of at least this many
# digits (2^32 values, so a prefix names one key in any realistic key table, and an ambiguous one is refused).
MIN_KEY_ID_PREFIX = 8
# How long an authenticated key's item is trusted without reading it again (see the module docstring): short enough
# that a key disabled elsewhere stops within half a minute, long enough that a busy sender costs one read per 30 s.
KEY_CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an admin sees of a stored key (never the key itself)."""

    key_id: str
    name: str
    tenant: str
    disabled: bool
    scopes: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    sending_domains: tuple[str, ...] = ()
    created_at: str | None = None
    expires_at: str | None = None
    replaced_by: str | None = None  # the key id a rotation made
    _pk: str = field(default="", repr=False, compare=False)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and parse_iso(self.expires_at) <= now

    def public(self, now: datetime) -> dict[str, object]:
        """The key as the API shows it: everything but the secret, which is never stored."""
        return {
            "id": self.key_id,
            "name": self.name,
            "tenant": self.tenant,
            "scopes": list(self.scopes),
            "mailboxes": list(self.mailboxes),
            "sending_domains": list(self.sending_domains),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "replaced_by": self.replaced_by,
            "state": "disabled" if self.disabled else "expired" if self.expired(now) else "active",
        }


def _info(item: dict[str, Any]) -> KeyInfo:
    return KeyInfo(
        key_id=item["key_id"],
        name=item.get("name", ""),
        tenant=item.get("tenant", ""),
        disabled=bool(item.get("disabled")),
        scopes=tuple(item.get("scopes") or ()),
        mailboxes=tuple(item.get("mailboxes") or ()),
        sending_domains=tuple(item.get("sending_domains") or ()),
        created_at=item.get("created_at"),
        expires_at=item.get("expires_at"),
        replaced_by=item.get("replaced_by"),
        _pk=item["pk"],
    )


def _listing(tenant: str, key_id: str) -> dict[str, str]:
    return {"gsi1pk": f"TENANT#{tenant}#KEY", "gsi1sk": key_id}


class ApiKeyStore:
    def __init__(self, dynamodb: Any, table: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._ddb = dynamodb
        self._table = table
        self._clock = clock  # tests move it to see a grace period end without waiting for it
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}  # pk -> (read at, monotonic; the item)
        self._cache_lock = threading.Lock()

    def forget(self, pk: str | None = None) -> None:
        """Drop the cached item of key ``pk`` (``KEY#<sha256>``), or all of them."""
        with self._cache_lock:
            if pk is None:
                self._cache.clear()
            else:
                self._cache.pop(pk, None)

    def _item(self, pk: str) -> dict[str, Any] | None:
        now = time.monotonic()
        cached = self._cache.get(pk)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        response = self._ddb.get_item(TableName=self._table, Key=to_item({"pk": pk, "sk": "KEY"}), ConsistentRead=True)
        if "Item" not in response:
            self.forget(pk)  # an unknown key is not cached: a key created a moment later must work at once
            return None
        item = from_item(response["Item"])
        with self._cache_lock:
            self._cache[pk] = (now, item)
        return item

    def create(
        self,
        *,
        name: str,
        scopes: frozenset[Scope],
        tenant: str = "default",
        key: str | None = None,
        mailboxes: frozenset[str] = frozenset(),
        sending_domains: frozenset[str] = frozenset(),
        expires_at: datetime | None = None,
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
                    "sending_domains": sorted(d.lower() for d in sending_domains) or None,
                    "expires_at": isoformat(expires_at) if expires_at else None,
                    **_listing(tenant, digest[:12]),
                }
            ),
        )
        return key

    def authenticate(self, key: str) -> Principal | None:
        item = self._item(f"KEY#{hash_key(key)}")
        if item is None:
            return None
        if item.get("disabled"):
            return None
        if item.get("expires_at") and parse_iso(item["expires_at"]) <= self._clock():
            return None  # expired, or the grace period of a rotation is over
        if "gsi1pk" not in item:  # a key from before the keys API: list it from now on
            self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": item["pk"], "sk": "KEY"}),
                UpdateExpression="SET gsi1pk = :p, gsi1sk = :s",
                ExpressionAttributeValues=to_item(
                    {":p": _listing(item["tenant"], item["key_id"])["gsi1pk"], ":s": item["key_id"]}
                ),
            )
            self.forget(item["pk"])
        scopes = frozenset(Scope(s) for s in item.get("scopes", []) if s in _KNOWN_SCOPES)
        mailboxes = frozenset(item.get("mailboxes") or ())
        return Principal(
            key_id=item["key_id"],
            tenant=item["tenant"],
            scopes=scopes,
            mailboxes=mailboxes,
            sending_domains=frozenset(item.get("sending_domains") or ()),
        )

    def _listed(self, tenant: str, key_id: str | None = None) -> list[KeyInfo]:
        condition = "gsi1pk = :p" + (" AND gsi1sk = :s" if key_id is not None else "")
        values = {":p": _listing(tenant, "")["gsi1pk"], **({":s": key_id} if key_id is not None else {})}
        found: list[KeyInfo] = []
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
        ):
            found.extend(_info(from_item(raw)) for raw in page.get("Items", []))
        return found

    def for_tenant(self, tenant: str) -> list[KeyInfo]:
        """The tenant's keys, oldest first."""
        return sorted(self._listed(tenant), key=lambda k: (k.created_at or "", k.key_id))

    def get(self, tenant: str, key_id: str) -> KeyInfo | None:
        """The tenant's key whose id is exactly ``key_id`` (never a prefix); another tenant's key is None."""
        found = self._listed(tenant, key_id)
        return found[0] if found else None

    def set_disabled(self, key: KeyInfo) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item({"pk": key._pk, "sk": "KEY"}),
            UpdateExpression="SET disabled = :t",
            ExpressionAttributeValues=to_item({":t": True}),
        )
        self.forget(key._pk)  # after the write: a lookup in between would cache the item as it was

    def now(self) -> datetime:
        return self._clock()

    def rotate(self, old: KeyInfo, grace: timedelta) -> tuple[str, KeyInfo]:
        """A new key with the old one's name, tenant, scopes and limits; the old key keeps working for ``grace``
        and then expires. The new key is stored before the old one is touched: a failure in between leaves both
        working, never neither. Returns the new secret and the old key as it is now."""
        key = self.create(
            name=old.name,
            scopes=frozenset(Scope(s) for s in old.scopes if s in _KNOWN_SCOPES),
            tenant=old.tenant,
            mailboxes=frozenset(old.mailboxes),
            sending_domains=frozenset(old.sending_domains),
            expires_at=parse_iso(old.expires_at) if old.expires_at else None,
        )
        ends = self._clock() + grace
        if old.expires_at and parse_iso(old.expires_at) < ends:
            ends = parse_iso(old.expires_at)  # a grace period never lengthens a key's life
        new_id = hash_key(key)[:12]
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item({"pk": old._pk, "sk": "KEY"}),
            UpdateExpression="SET expires_at = :e, replaced_by = :r",
            ExpressionAttributeValues=to_item({":e": isoformat(ends), ":r": new_id}),
        )
        self.forget(old._pk)
        return key, replace(old, expires_at=isoformat(ends), replaced_by=new_id)

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
                self.forget(item["pk"]["S"])
                count += 1
        return count
