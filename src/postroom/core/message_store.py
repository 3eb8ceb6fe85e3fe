"""Message items and bodies.

DynamoDB item ``pk=MSG#<id>``, ``sk=MSG``: the record as a JSON document in ``doc`` plus the attributes that are
queried or conditioned on (status, tenant, version, gsi1 keys). S3 holds the bodies, which may be up to 40 MB:
``messages/<id>/request.json`` (the validated request, attachments included) and ``messages/<id>/message.eml`` (the
MIME built by the first delivery attempt, reused by every retry so all attempts send identical bytes).

Listing (``GET /v1/messages``, the console's Activity) reads gsi1 (``gsi1pk=TENANT#<tenant>#MSG``,
``gsi1sk=<created_at>#<id>``) newest first, never the table: a date range is a key condition, the other filters are
applied to the items read, and one page reads at most :data:`LIST_READ_BUDGET` items, so its cost does not grow with
the table. A selective filter may therefore answer a short (even empty) page with a cursor to continue from.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from postroom.core.dynamo import from_item, is_conditional_failure, to_item
from postroom.core.message_record import MessageRecord

# The most index items one list page reads, whatever the filters: bounds the page's time and read cost.
LIST_READ_BUDGET = 1000
_BATCH_GET_MAX = 100  # DynamoDB's BatchGetItem limit
_UNPROCESSED_ROUNDS = 4  # BatchGetItem rounds for throttled (unprocessed) keys before reading them one by one
_CURSOR_PREFIX = "v1:"


class MessageNotFoundError(LookupError):
    pass


class InvalidCursorError(ValueError):
    """A list cursor that this store did not hand out."""


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """What Activity filters on. Addresses and tags match exactly (case-insensitively for addresses); ``text`` is a
    case-insensitive substring of the subject or of a recipient; ``since``/``until`` bound ``created_at`` (UTC ISO)."""

    status: str | None = None
    recipient: str | None = None
    sender: str | None = None
    tag: str | None = None
    text: str | None = None
    since: str | None = None
    until: str | None = None

    def matches(self, record: MessageRecord) -> bool:
        addresses = [r.address.lower() for r in record.recipients]
        if self.status is not None and record.status.value != self.status:
            return False
        if self.recipient is not None and self.recipient.lower() not in addresses:
            return False
        if self.sender is not None and record.from_address.lower() != self.sender.lower():
            return False
        if self.tag is not None and self.tag not in record.tags:
            return False
        if self.text:
            needle = self.text.lower()
            return needle in record.subject.lower() or any(needle in address for address in addresses)
        return True


@dataclass(frozen=True, slots=True)
class MessagePage:
    records: list[MessageRecord]
    next_cursor: str | None  # None: nothing older matches


def encode_cursor(sort_key: str) -> str:
    # Opaque to clients; it carries only the sort key, and the tenant always comes from the caller's key, so a cursor
    # cannot page into another tenant's messages.
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + sort_key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursorError(cursor) from None
    if not text.startswith(_CURSOR_PREFIX) or "#msg_" not in text:
        raise InvalidCursorError(cursor)
    return text.removeprefix(_CURSOR_PREFIX)


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

    def find_request(self, message_id: str) -> bytes | None:
        """The request body, or None for a message accepted without one (a raw message: only its MIME is kept)."""
        try:
            return self.get_request(message_id)
        except self._s3.exceptions.NoSuchKey:
            return None

    def missing_body_errors(self) -> type[Exception]:
        """What :meth:`get_request` raises for a message that has no stored request (a raw submission)."""
        error: type[Exception] = self._s3.exceptions.NoSuchKey
        return error

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

    def get_many(self, message_ids: list[str]) -> dict[str, MessageRecord]:
        """The records of ``message_ids`` (consistent reads) in BatchGetItem calls of up to 100 keys: one call for a
        worker's batch of 10 instead of one GetItem each. An id without a record is absent from the answer."""
        found: dict[str, MessageRecord] = {}
        unique = list(dict.fromkeys(message_ids))
        for start in range(0, len(unique), _BATCH_GET_MAX):
            keys = [to_item({"pk": f"MSG#{mid}", "sk": "MSG"}) for mid in unique[start : start + _BATCH_GET_MAX]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(_UNPROCESSED_ROUNDS):
                response = self._ddb.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self._table, []):
                    item = from_item(raw)
                    record = MessageRecord.model_validate(json.loads(item["doc"]))
                    record.version = int(item["version"])
                    found[record.id] = record
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                # Throttled keys still unread after every round: read them one by one (GetItem raises if it fails).
                for key in request[self._table]["Keys"]:
                    mid = from_item(key)["pk"].removeprefix("MSG#")
                    with contextlib.suppress(MessageNotFoundError):
                        found[mid] = self.get(mid)
        return found

    def list_page(
        self,
        tenant: str,
        where: MessageFilter,
        *,
        limit: int,
        cursor: str | None = None,
        budget: int = LIST_READ_BUDGET,
    ) -> MessagePage:
        """The tenant's messages matching ``where``, newest first, from ``cursor`` on (see the module docstring)."""
        found: list[MessageRecord] = []
        read = 0
        last_key: str | None = None
        for sort_key, record in self._newest_first(tenant, where, cursor, budget, limit):
            read += 1
            last_key = sort_key
            if where.matches(record):
                found.append(record)
                if len(found) == limit:
                    break
        # A full page, or a spent read budget, continues after the last item read; otherwise the index ran out.
        more = len(found) == limit or read == budget
        return MessagePage(found, encode_cursor(last_key) if more and last_key else None)

    def _newest_first(
        self, tenant: str, where: MessageFilter, cursor: str | None, budget: int, page: int
    ) -> Iterator[tuple[str, MessageRecord]]:
        # "~" sorts after every character of an id, so an ``until`` bound includes that instant's messages.
        upper = f"{where.until}~" if where.until else "~"
        after = decode_cursor(cursor) if cursor is not None else None
        if after is not None:
            upper = min(upper, after)
        lower = where.since or "0"
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": to_item({":pk": f"TENANT#{tenant}#MSG", ":lo": lower, ":hi": upper}),
            "ScanIndexForward": False,
        }
        remaining = budget
        # The first Query asks for one page (and the cursor's own item): an unfiltered page then reads page + 1 items,
        # not 200. Only a filter that skips items goes on, 200 at a time, until the page fills or the budget is spent.
        step = page + 1
        while remaining > 0:
            response = self._ddb.query(**query, Limit=min(remaining + 1, step))
            step = 200
            for raw in response.get("Items", []):
                item = from_item(raw)
                if item["gsi1sk"] == after:  # BETWEEN is inclusive; the cursor's own item was shown
                    continue
                if remaining == 0:
                    return
                remaining -= 1
                record = MessageRecord.model_validate(json.loads(item["doc"]))
                record.version = int(item["version"])
                yield item["gsi1sk"], record
            if "LastEvaluatedKey" not in response:
                return
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

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

    def save_many(self, records: list[MessageRecord]) -> list[Exception | None]:
        """:meth:`save` for several records in one TransactWriteItems call (a worker's batch: one request instead of
        one PutItem each), with the same optimistic locking per record. Returns, per record, None (saved) or the
        exception its own :meth:`save` raised: when the transaction fails (a record changed meanwhile, a conflict, a
        service error), every record is saved on its own, so one conflicting record does not fail the others."""
        if len(records) == 1:
            return [self._save_one(records[0])]
        if not records:
            return []
        try:
            self._ddb.transact_write_items(TransactItems=[self.save_operation(record) for record in records])
        except Exception:  # noqa: BLE001 - any failure: fall back to one save each, which says which record failed
            return [self._save_one(record) for record in records]
        for record in records:
            record.version += 1
        return [None for _ in records]

    def _save_one(self, record: MessageRecord) -> Exception | None:
        try:
            self.save(record)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, per record
            return exc
        return None

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
