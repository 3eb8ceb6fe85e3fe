"""The sending-domain registry: domains added through ``/v1/domains``, and the gate the send path asks.

Item shape (table comment in template.yaml): ``pk=DOMAIN#<name>``, ``sk=DOMAIN``, listed per tenant through gsi1
(``gsi1pk=TENANT#<tenant>#DOMAIN``, ``gsi1sk=<name>``) - name, tenant, delivery
(ses|smtp|auto), state (pending|verified|retired), return_path, mail_from, dkim (selectors with their algorithm; the
private keys are in SSM/Secrets Manager under DkimKeyPrefix), records (what to publish, each with its purpose),
problems (what the last check found missing or wrong), ses_status, created_at, checked_at, verified_at, retired_at.

The ``SendingDomains`` parameter stays the seed: those domains may send as configured, without an item. A domain from
the registry may send only once it is ``verified``; until then the refusal names the record that is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, to_item

__all__ = [
    "DkimSelectors",
    "DomainGate",
    "DomainRecord",
    "DomainRegistry",
    "DomainState",
    "KeyDomainGate",
    "RegisteredDomain",
    "SendingDomainGate",
    "StaticDomainGate",
]

DOMAIN_CACHE_SECONDS_DEFAULT = 30  # how long a Lambda trusts what it read about a domain


class DomainState(StrEnum):
    PENDING = "pending"  # created; its records are not (all) published yet
    VERIFIED = "verified"  # every required record was found as published
    RETIRED = "retired"  # deleted through the API: sends nothing new


@dataclass(frozen=True)
class DomainRecord:
    """One DNS record to publish, and why; ``status`` is what the last check found."""

    name: str
    type: str
    value: str
    purpose: str  # dkim, spf, return-path, mail-from, dmarc
    required: bool = True
    status: str = "missing"  # published | missing | wrong | unchecked (the DNS did not answer)
    found: tuple[str, ...] = ()  # what the DNS holds there instead, when wrong

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "value": self.value,
            "purpose": self.purpose,
            "required": self.required,
            "status": self.status,
            "found": list(self.found),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainRecord:
        return cls(
            name=data["name"],
            type=data["type"],
            value=data["value"],
            purpose=data["purpose"],
            required=bool(data.get("required", True)),
            status=data.get("status", "missing"),
            found=tuple(data.get("found") or ()),
        )

    def problem(self) -> str | None:
        if self.status == "published":
            return None
        if self.status == "unchecked":
            return f"the {self.purpose} record {self.name} {self.type} could not be checked (the DNS did not answer)"
        if self.status == "wrong":
            return f"the {self.purpose} record {self.name} {self.type} is wrong: publish {self.value!r}"
        return f"the {self.purpose} record {self.name} {self.type} is missing: publish {self.value!r}"


@dataclass(frozen=True)
class RegisteredDomain:
    name: str
    tenant: str
    delivery: str
    state: DomainState
    records: tuple[DomainRecord, ...]
    dkim: tuple[dict[str, str], ...] = ()  # {"selector", "algorithm"}
    return_path: str | None = None
    mail_from: str | None = None
    ses_status: str | None = None
    created_at: str | None = None
    checked_at: str | None = None
    verified_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        return [p for r in self.records if r.required and (p := r.problem())]

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "delivery": self.delivery,
            "state": self.state.value,
            "return_path": self.return_path,
            "mail_from": self.mail_from,
            "dkim": [dict(d) for d in self.dkim],
            "ses_status": self.ses_status,
            "records": [r.to_dict() for r in self.records],
            "problems": self.problems(),
            "created_at": self.created_at,
            "checked_at": self.checked_at,
            "verified_at": self.verified_at,
        }


def _domain(item: dict[str, Any]) -> RegisteredDomain:
    return RegisteredDomain(
        name=item["name"],
        tenant=item.get("tenant", ""),
        delivery=item.get("delivery", "auto"),
        state=DomainState(item.get("state", "pending")),
        records=tuple(DomainRecord.from_dict(r) for r in item.get("records") or ()),
        dkim=tuple(dict(d) for d in item.get("dkim") or ()),
        return_path=item.get("return_path"),
        mail_from=item.get("mail_from"),
        ses_status=item.get("ses_status"),
        created_at=item.get("created_at"),
        checked_at=item.get("checked_at"),
        verified_at=item.get("verified_at"),
    )


def _listing(tenant: str) -> str:
    return f"TENANT#{tenant}#DOMAIN"


class DomainRegistry:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    @staticmethod
    def _key(name: str) -> dict[str, Any]:
        return to_item({"pk": f"DOMAIN#{name}", "sk": "DOMAIN"})

    def get(self, name: str) -> RegisteredDomain | None:
        response = self._ddb.get_item(TableName=self._table, Key=self._key(name), ConsistentRead=True)
        return _domain(from_item(response["Item"])) if "Item" in response else None

    def list(self, tenant: str) -> list[RegisteredDomain]:
        """The tenant's domains from the registry (retired ones included, with their state), by name: one Query per
        page of the index, never a Scan."""
        found: list[RegisteredDomain] = []
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": _listing(tenant)}),
        }
        while True:
            response = self._ddb.query(**params)
            found.extend(_domain(from_item(item)) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put(self, domain: RegisteredDomain, *, new: bool = False) -> None:
        """Store ``domain``; with ``new``, only if no live item has that name (a retired one may be re-created)."""
        item = {
            "pk": f"DOMAIN#{domain.name}",
            "sk": "DOMAIN",
            "gsi1pk": _listing(domain.tenant),
            "gsi1sk": domain.name,
            "name": domain.name,
            "tenant": domain.tenant,
            "delivery": domain.delivery,
            "state": domain.state.value,
            "records": [r.to_dict() for r in domain.records],
            "dkim": [dict(d) for d in domain.dkim],
            "return_path": domain.return_path,
            "mail_from": domain.mail_from,
            "ses_status": domain.ses_status,
            "created_at": domain.created_at or now_iso(),
            "checked_at": domain.checked_at,
            "verified_at": domain.verified_at,
        }
        args: dict[str, Any] = {"TableName": self._table, "Item": to_item(item)}
        if new:
            args["ConditionExpression"] = "attribute_not_exists(pk) OR #s = :retired"
            args["ExpressionAttributeNames"] = {"#s": "state"}
            args["ExpressionAttributeValues"] = to_item({":retired": DomainState.RETIRED.value})
        self._ddb.put_item(**args)


@runtime_checkable
class DomainGate(Protocol):
    def refusal(self, domain: str) -> str | None:
        """None when ``domain`` may send; otherwise why not, in words the caller can act on."""
        ...

    def delivery_for(self, domain: str) -> str | None:
        """The path (ses|smtp) a domain added through the API was set up for; None: the settings decide."""
        ...


class StaticDomainGate:
    """Only the configured ``SendingDomains`` (the seed): what a stack without a registry allows."""

    def __init__(self, domains: Collection[str]) -> None:
        self._domains = domains

    def refusal(self, domain: str) -> str | None:
        if domain.lower() in self._domains:
            return None
        return f"{domain!r} is not a sending domain of this Postroom stack; configure it in SendingDomains first"

    def delivery_for(self, domain: str) -> str | None:
        return None


class DkimSelectors(Mapping[str, tuple[str, ...]]):
    """The DKIM selectors per sending domain the worker signs with: ``DkimSelectors`` (the settings) first, then the
    keys Postroom made for a domain added through the API. Seed domains are never looked up, so a stack that uses
    only SendingDomains makes no registry reads; a registry domain costs one read per domain per cache time."""

    def __init__(self, configured: Mapping[str, tuple[str, ...]], gate: SendingDomainGate) -> None:
        self._configured = configured
        self._gate = gate

    def __getitem__(self, domain: str) -> tuple[str, ...]:
        domain = domain.lower()
        if domain in self._configured:
            return self._configured[domain]
        registered = None if self._gate.is_seed(domain) else self._gate.lookup(domain)
        # A retired domain keeps signing: mail accepted before it was retired is still in the queue.
        if registered is None or not registered.dkim:
            raise KeyError(domain)
        return tuple(entry["selector"] for entry in registered.dkim)

    def __iter__(self) -> Iterator[str]:
        return iter(self._configured)

    def __len__(self) -> int:
        return len(self._configured)


class KeyDomainGate:
    """``gate``, narrowed to the domains an API key may send from (its ``sending_domains``; empty = all)."""

    def __init__(self, gate: DomainGate, allowed: Collection[str]) -> None:
        self._gate = gate
        self._allowed = allowed

    def refusal(self, domain: str) -> str | None:
        if self._allowed and domain.lower() not in self._allowed:
            return f"this API key may not send from {domain!r}; it may send from {', '.join(sorted(self._allowed))}"
        return self._gate.refusal(domain)

    def delivery_for(self, domain: str) -> str | None:
        return self._gate.delivery_for(domain)


class SendingDomainGate:
    """The seed, then the registry, read through a short per-Lambda cache: a domain verified in another Lambda can
    send here once ``ttl`` has passed, and a busy sender costs one GetItem per domain per ``ttl``, not per message."""

    def __init__(
        self,
        seed: Collection[str],
        registry: DomainRegistry,
        *,
        ttl: float = DOMAIN_CACHE_SECONDS_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seed = seed
        self._registry = registry
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, RegisteredDomain | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, domain: str) -> RegisteredDomain | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(domain)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        found = self._registry.get(domain)
        with self._lock:
            self._cache[domain] = (now, found)
        return found

    def is_seed(self, domain: str) -> bool:
        return domain.lower() in self._seed

    def forget(self, domain: str) -> None:
        """This Lambda just changed ``domain``: its own next send must not wait for the cache."""
        with self._lock:
            self._cache.pop(domain, None)

    def delivery_for(self, domain: str) -> str | None:
        # Its records (its DKIM keys, its SPF) were made for one path: "auto" must not send it down the other.
        domain = domain.lower()
        if domain in self._seed:
            return None
        registered = self.lookup(domain)
        if registered is None or registered.delivery == "auto":
            return None
        return registered.delivery

    def refusal(self, domain: str) -> str | None:
        domain = domain.lower()
        if domain in self._seed:
            return None
        registered = self.lookup(domain)
        if registered is None or registered.state is DomainState.RETIRED:
            return StaticDomainGate(self._seed).refusal(domain)
        if registered.state is DomainState.VERIFIED:
            return None
        problems = registered.problems()
        why = problems[0] if problems else "its records have not been checked yet"
        return f"{domain!r} is not verified yet: {why}; then POST /v1/domains/{domain}/verify"
