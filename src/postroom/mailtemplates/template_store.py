"""Where templates live: a tenant's own templates in the table, and the built-in commerce templates in the package.

DynamoDB item ``pk=TPL#<tenant>#<name>``, ``sk=TPL``, listed per tenant through gsi1 (``gsi1pk=TENANT#<tenant>#TPL``,
``gsi1sk=<name>``). A stored template with a built-in's name replaces the built-in for that tenant, which is how a shop
restyles its order confirmation without touching the commerce hooks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, to_item
from postroom.mailtemplates.render import TemplateSource

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)

# The built-in templates, rendered from the commerce hooks' order variables (see postroom.commerce.orders).
BUILTIN_NAMES = (
    "order_confirmation",
    "shipping_confirmation",
    "refund",
    "order_cancelled",
    "abandoned_checkout",
)


class TemplateNotFoundError(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    name: str
    source: TemplateSource
    description: str = ""
    builtin: bool = False
    created_at: str | None = None
    updated_at: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subject": self.source.subject,
            "html": self.source.html,
            "text": self.source.text,
            "description": self.description,
            "builtin": self.builtin,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def _read(name: str) -> str:
    return (resources.files("postroom.mailtemplates") / "defaults" / name).read_text(encoding="utf-8")


@cache
def builtin(name: str) -> StoredTemplate:
    """A built-in template: its body is put into the shared layout, with the shared item/total/address blocks."""
    if name not in BUILTIN_NAMES:
        raise TemplateNotFoundError(name)
    body = _read(f"{name}.html")
    for marker, part in (
        ("__ITEMS__", "_items.html"),
        ("__TOTALS__", "_totals.html"),
        ("__ADDRESS__", "_address.html"),
    ):
        body = body.replace(marker, _read(part))
    html = _read("layout.html").replace("__CONTENT__", body)
    subject = _read(f"{name}.subject.txt").strip()
    description = f"built-in {name.replace('_', ' ')} template for the commerce hooks"
    return StoredTemplate(name=name, source=TemplateSource(subject=subject, html=html), description=description,
                          builtin=True)  # fmt: skip


class TemplateStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def get(self, tenant: str, name: str) -> StoredTemplate:
        """The tenant's template of that name, else the built-in one; TemplateNotFoundError when neither exists."""
        response = self._ddb.get_item(TableName=self._table, Key=to_item(_key(tenant, name)), ConsistentRead=True)
        if "Item" in response:
            return _from_item(from_item(response["Item"]))
        return builtin(name)

    def put(self, tenant: str, name: str, source: TemplateSource, description: str = "") -> tuple[StoredTemplate, bool]:
        """Create or replace; returns the template and whether it was created."""
        now = now_iso()
        response = self._ddb.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    **_key(tenant, name),
                    "gsi1pk": f"TENANT#{tenant}#TPL",
                    "gsi1sk": name,
                    "name": name,
                    "subject": source.subject,
                    "html": source.html,
                    "text": source.text,
                    "description": description,
                    "created_at": now,
                    "updated_at": now,
                }
            ),
            ReturnValues="ALL_OLD",
        )
        old = from_item(response.get("Attributes") or {})
        created_at = old.get("created_at", now)
        if old:  # keep the original creation time (a second write is cheaper than a read before every put)
            self._ddb.update_item(
                TableName=self._table,
                Key=to_item(_key(tenant, name)),
                UpdateExpression="SET created_at = :c",
                ExpressionAttributeValues=to_item({":c": created_at}),
            )
        template = StoredTemplate(name, source, description, created_at=created_at, updated_at=now)
        return template, not old

    def delete(self, tenant: str, name: str) -> bool:
        response = self._ddb.delete_item(TableName=self._table, Key=to_item(_key(tenant, name)), ReturnValues="ALL_OLD")
        return bool(response.get("Attributes"))

    def list(self, tenant: str) -> list[StoredTemplate]:
        """The tenant's templates and the built-ins they do not replace, by name."""
        own: dict[str, StoredTemplate] = {}
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues=to_item({":pk": f"TENANT#{tenant}#TPL"}),
        ):
            for item in page.get("Items", []):
                template = _from_item(from_item(item))
                own[template.name] = template
        for name in BUILTIN_NAMES:
            own.setdefault(name, builtin(name))
        return [own[name] for name in sorted(own)]


def _key(tenant: str, name: str) -> dict[str, str]:
    return {"pk": f"TPL#{tenant}#{name}", "sk": "TPL"}


def _from_item(item: dict[str, Any]) -> StoredTemplate:
    return StoredTemplate(
        name=item["name"],
        source=TemplateSource(subject=item["subject"], html=item["html"], text=item.get("text")),
        description=item.get("description", ""),
        created_at=item.get("created_at"),
        updated_at=item.get("updated_at"),
    )
