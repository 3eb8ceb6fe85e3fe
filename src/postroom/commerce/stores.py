"""Stores: one per shop that sends webhooks, with the platform, the tenant its mails belong to, and the sender.

Where the secret lives, and why: the store's settings are an item in the table (``pk=STORE#<id>``), but its webhook
secret is in **Secrets Manager** (``<StoreSecretPrefix><id>``). Every function can read the table, while only the hook
function may read these secrets (its IAM policy names the prefix); reads are audited in CloudTrail, the value never
shows in a table scan or backup, and it can be rotated without touching the item. The hook function caches a secret
for five minutes (Powertools Parameters), so a webhook costs no Secrets Manager call when the function is warm.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, to_item

STORE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SECRET_CACHE_SECONDS = 300


class Platform(StrEnum):
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    platform: Platform
    sender: str  # "Shop <orders@shop.example>": its domain must be a sending domain
    shop_name: str
    tenant: str = "default"
    support_email: str = ""
    reminder_delay_minutes: int = 60  # abandoned checkout: how long after the customer's last change to remind
    # The store's locale ("de-DE"): money, dates and country names in its mails when the order names no customer
    # locale (WooCommerce never does). Empty means English formats.
    locale: str = ""
    disabled: bool = False


def _listing(tenant: str) -> str:
    return f"TENANT#{tenant}#STORE"


def _store(item: dict[str, Any]) -> Store:
    return Store(
        id=item["id"],
        platform=Platform(item["platform"]),
        sender=item["sender"],
        shop_name=item["shop_name"],
        tenant=item.get("tenant", "default"),
        support_email=item.get("support_email", ""),
        reminder_delay_minutes=int(item.get("reminder_delay_minutes", 60)),
        locale=item.get("locale", ""),
        disabled=bool(item.get("disabled", False)),
    )


def public_store(store: Store) -> dict[str, object]:
    """A store as the API shows it: every setting, never the webhook secret (it is only ever written)."""
    return {**asdict(store), "platform": store.platform.value}


class StoreRegistry:
    def __init__(self, dynamodb: Any, secretsmanager: Any, *, table: str, secret_prefix: str) -> None:
        self._ddb = dynamodb
        self._secretsmanager = secretsmanager
        self._table = table
        self._prefix = secret_prefix
        self._secrets = SecretsProvider(boto3_client=secretsmanager)

    def get(self, store_id: str) -> Store | None:
        if not STORE_ID.match(store_id):
            return None
        response = self._ddb.get_item(TableName=self._table, Key=to_item({"pk": f"STORE#{store_id}", "sk": "STORE"}))
        if "Item" not in response:
            return None
        return _store(from_item(response["Item"]))

    def for_tenant(self, tenant: str) -> list[Store]:
        """The tenant's stores by id (gsi1, like its keys and templates: no Scan of the table)."""
        found: list[Store] = []
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues=to_item({":p": _listing(tenant)}),
        ):
            found.extend(_store(from_item(raw)) for raw in page.get("Items", []))  # gsi1 projects whole items
        return sorted(found, key=lambda s: s.id)

    def secret(self, store_id: str) -> str:
        value = self._secrets.get(f"{self._prefix}{store_id}", max_age=SECRET_CACHE_SECONDS)
        return value if isinstance(value, str) else ""

    def put(self, store: Store, secret: str) -> None:
        """Create or replace a store and its secret (``POST /v1/stores``, or the CLI with the operator's credentials).
        The secret is written before the item, so a store never exists without the secret its hooks are checked
        with."""
        if not STORE_ID.match(store.id):
            raise ValueError("a store id is 1-63 lower-case letters, digits and '-'")
        name = f"{self._prefix}{store.id}"
        try:
            self._secretsmanager.create_secret(Name=name, SecretString=secret, Description=f"Postroom store {store.id}")
        except self._secretsmanager.exceptions.ResourceExistsException:
            self._secretsmanager.put_secret_value(SecretId=name, SecretString=secret)
        item = {
            **asdict(store),
            "platform": store.platform.value,
            "pk": f"STORE#{store.id}",
            "sk": "STORE",
            "gsi1pk": _listing(store.tenant),
            "gsi1sk": store.id,
        }
        self._ddb.put_item(TableName=self._table, Item=to_item({**item, "updated_at": now_iso()}))
