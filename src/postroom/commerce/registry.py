"""The commerce side's AWS state: stores, queued webhook payloads, remembered orders and checkouts."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Literal

from postroom.commerce.hook_tasks import Hook, task_body
from postroom.commerce.stores import StoreRegistry
from postroom.core.dynamo import from_item, is_conditional_failure, to_item

if TYPE_CHECKING:
    from postroom.core.settings import Settings

ORDER_RETENTION_SECONDS = 400 * 24 * 3600  # refunds come months after the order; customer data does not stay forever


class CommerceServices:
    def __init__(self, settings: Settings, *, dynamodb: Any, s3: Any, sqs: Any, secretsmanager: Any) -> None:
        self._settings = settings
        self._ddb = dynamodb
        self._s3 = s3
        self._sqs = sqs
        self.stores = StoreRegistry(
            dynamodb, secretsmanager, table=settings.table, secret_prefix=settings.store_secret_prefix
        )

    # --- webhook payloads ---------------------------------------------------------------------------------------
    def stash(self, hook: Hook) -> str:
        """Keep the payload in S3 (orders can outgrow SQS's 256 KB), then queue a pointer to it."""
        if not self._settings.commerce_queue_url:
            raise RuntimeError("POSTROOM_COMMERCE_QUEUE_URL is not set")
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in hook.delivery_id)
        key = f"hooks/{hook.platform.value}/{hook.store.id}/{safe_id}.json"
        self._s3.put_object(Bucket=self._settings.bucket, Key=key, Body=hook.body, ContentType="application/json")
        self._sqs.send_message(QueueUrl=self._settings.commerce_queue_url, MessageBody=task_body(hook, key))
        return key

    def payload(self, key: str) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self._s3.get_object(Bucket=self._settings.bucket, Key=key)["Body"].read())
        return payload

    # --- orders ---------------------------------------------------------------------------------------------------
    def remember_order(self, store_id: str, order_id: str, email: str, variables: dict[str, Any]) -> None:
        self._ddb.put_item(
            TableName=self._settings.table,
            Item=to_item(
                {
                    "pk": f"ORDER#{store_id}#{order_id}",
                    "sk": "ORDER",
                    "email": email,
                    "doc": json.dumps(variables),
                    "expires_at": int(time.time()) + ORDER_RETENTION_SECONDS,
                }
            ),
        )

    def order(self, store_id: str, order_id: str) -> tuple[str, dict[str, Any]] | None:
        response = self._ddb.get_item(
            TableName=self._settings.table,
            Key=to_item({"pk": f"ORDER#{store_id}#{order_id}", "sk": "ORDER"}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        return item["email"], json.loads(item["doc"])

    # --- checkouts --------------------------------------------------------------------------------------------------
    def _checkout_key(self, store_id: str, token: str) -> dict[str, Any]:
        return to_item({"pk": f"CHECKOUT#{store_id}#{token}", "sk": "CHECKOUT"})

    def checkout(self, store_id: str, token: str) -> dict[str, Any]:
        response = self._ddb.get_item(
            TableName=self._settings.table, Key=self._checkout_key(store_id, token), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else {}

    def set_reminder(self, store_id: str, token: str, message_id: str, version: str) -> str | Literal[False] | None:
        """Record the checkout's reminder unless the checkout is completed. Returns the reminder it replaces (or
        None), or False when the checkout was completed meanwhile (the caller then cancels its new reminder)."""
        try:
            response = self._ddb.update_item(
                TableName=self._settings.table,
                Key=self._checkout_key(store_id, token),
                UpdateExpression="SET reminder = :m, reminder_for = :v, expires_at = :e",
                ConditionExpression="attribute_not_exists(completed) OR completed = :f",
                ExpressionAttributeValues=to_item(
                    {":m": message_id, ":v": version, ":f": False, ":e": int(time.time()) + 90 * 24 * 3600}
                ),
                ReturnValues="UPDATED_OLD",
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        old = from_item(response.get("Attributes") or {})
        previous = old.get("reminder")
        return previous if previous and previous != message_id else None

    def complete_checkout(self, store_id: str, token: str) -> str | None:
        """Mark the checkout completed (no reminder from now on); returns its reminder's message id, if any."""
        response = self._ddb.update_item(
            TableName=self._settings.table,
            Key=self._checkout_key(store_id, token),
            UpdateExpression="SET completed = :t, expires_at = :e",
            ExpressionAttributeValues=to_item({":t": True, ":e": int(time.time()) + 90 * 24 * 3600}),
            ReturnValues="ALL_OLD",
        )
        return from_item(response.get("Attributes") or {}).get("reminder")
