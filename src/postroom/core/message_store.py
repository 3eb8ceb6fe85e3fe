"""Message items and bodies.

DynamoDB item ``pk=MSG#<id>``, ``sk=MSG``: the record as a JSON document in ``doc`` plus the attributes that are
queried or conditioned on (status, tenant, version, gsi1 keys). S3 holds the bodies, which may be up to 40 MB:
``messages/<id>/request.json`` (the validated request, attachments included) and ``messages/<id>/message.eml`` (the
MIME built by the first delivery attempt, reused by every retry so all attempts send identical bytes).
"""

from __future__ import annotations

import json
from typing import Any

from postroom.core.dynamo import from_item, is_conditional_failure, to_item
from postroom.core.message_record import MessageRecord


class MessageNotFoundError(LookupError):
    pass


class ConcurrentUpdateError(RuntimeError):
    """Someone else updated the message since it was read; the caller re-reads and retries."""


def request_key(message_id: str) -> str:
    return f"messages/{message_id}/request.json"


def scheduled_request_key(message_id: str) -> str:
    # Scheduled messages keep their body outside messages/, whose lifecycle rule would expire it before a far send_at.
    return f"scheduled/{message_id}/request.json"


def mime_key(message_id: str) -> str:
    return f"messages/{message_id}/message.eml"


class MessageStore:
    def __init__(self, *, dynamodb: Any, s3: Any, table: str, bucket: str) -> None:
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket

    # --- bodies -------------------------------------------------------------------------------------------------
    def put_request(self, message_id: str, body: bytes, *, scheduled: bool = False) -> None:
        key = scheduled_request_key(message_id) if scheduled else request_key(message_id)
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")

    def get_request(self, message_id: str) -> bytes:
        try:
            body: bytes = self._s3.get_object(Bucket=self._bucket, Key=request_key(message_id))["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            body = self._s3.get_object(Bucket=self._bucket, Key=scheduled_request_key(message_id))["Body"].read()
        return body

    def put_mime(self, message_id: str, mime: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=mime_key(message_id), Body=mime, ContentType="message/rfc822")

    def get_mime(self, message_id: str) -> bytes | None:
        try:
            mime: bytes = self._s3.get_object(Bucket=self._bucket, Key=mime_key(message_id))["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            return None
        return mime

    # --- records ------------------------------------------------------------------------------------------------
    def create(self, record: MessageRecord) -> None:
        self._ddb.put_item(
            TableName=self._table,
            Item=self._item(record),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, message_id: str) -> MessageRecord:
        response = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"MSG#{message_id}", "sk": "MSG"}), ConsistentRead=True
        )
        if "Item" not in response:
            raise MessageNotFoundError(message_id)
        item = from_item(response["Item"])
        record = MessageRecord.model_validate(json.loads(item["doc"]))
        record.version = int(item["version"])
        return record

    def save(self, record: MessageRecord) -> None:
        """Write back a record read with :meth:`get`; fails if it changed in between (optimistic locking)."""
        expected = record.version
        record.version = expected + 1
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=self._item(record),
                ConditionExpression="version = :expected",
                ExpressionAttributeValues=to_item({":expected": expected}),
            )
        except Exception as exc:
            record.version = expected
            if is_conditional_failure(exc):
                raise ConcurrentUpdateError(record.id) from exc
            raise

    def save_operation(self, record: MessageRecord) -> dict[str, Any]:
        """The same write as :meth:`save`, as a TransactWriteItems element, for saving a record atomically with
        other items (an event). Optimistic locking is the same; the caller re-reads the record afterwards."""
        item = self._item(record.model_copy(update={"version": record.version + 1}))
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeValues": to_item({":expected": record.version}),
            }
        }

    @staticmethod
    def _item(record: MessageRecord) -> dict[str, Any]:
        return to_item(
            {
                "pk": f"MSG#{record.id}",
                "sk": "MSG",
                "gsi1pk": f"TENANT#{record.tenant}#MSG",
                "gsi1sk": f"{record.created_at}#{record.id}",
                "tenant": record.tenant,
                "status": record.status.value,
                "version": record.version,
                "created_at": record.created_at,
                "updated_at": record.updated_at,
                "doc": record.model_dump_json(exclude={"version"}),
            }
        )
