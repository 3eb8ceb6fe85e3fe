"""The mailbox index in the single table. The only module that knows these item shapes.

Items (see also the comment above ``Table`` in template.yaml):

    address   pk=ADDR#<address>            sk=ADDR                 tenant, gsi1pk=ADDR, gsi1sk=<address>
    mailbox   pk=ADDR#<address>            sk=MBX#<key>            name, role, total, unread, modseq, uidvalidity
    message   pk=MBX#<mailbox id>          sk=MSG#<ulid>           the listing fields, keywords, modseq, uid
    pointer   pk=MAIL#<mail id>            sk=MAIL                 mailbox id, address, receipt
    change    pk=MBX#<mailbox id>#CHG      sk=<modseq, 20 digits>  id, kind, expires_at, uid (of a destroyed message)
    receipt   pk=RCV#<receipt id>          sk=RCV                  refs (mailbox copies still using the S3 objects)

A mailbox id is ``<address>:<key>`` (``support@shop.example:inbox``): readable in a curl command and it names the
address, whose item says which tenant owns it (and so all its mailboxes and messages). A message's sort key is its
id's ULID, whose first ten characters are the received time: a newest-first Query with ``Limit`` reads one page
whatever the mailbox holds, and since/before are key conditions, not filters.

**Modseq.** Every change to a mailbox (a message filed, flagged, moved in or out, expunged) runs in one transaction
that also moves the mailbox item's ``modseq`` from n to n+1 (conditioned on n) and writes change n+1. Writers to one
mailbox are therefore serialised, every modseq has exactly one change item, and a change with modseq <= the mailbox's
modseq is committed: a client holding state n reads the changes n+1.. and is complete (IMAP CONDSTORE, RFC 7162;
JMAP ``Email/changes``, RFC 8621). Change items expire after :data:`CHANGE_LOG_DAYS`; a state older than the oldest
kept change cannot be brought up to date and must resync (a gap in the numbers shows it).

**UIDs.** IMAP needs a number per message that only grows with arrival in its mailbox and never changes while the
message stays there (RFC 3501 2.3.1.1). The modseq a message is filed or moved in under is exactly that: the mailbox's
modseq steps once per change and the filing transaction owns the step, so ``uid`` is that step, set once and never
updated (``modseq`` on the message moves on with every flag change; ``uid`` does not). A message moved or copied
elsewhere gets a new uid there, as IMAP MOVE and COPY do; the mailbox's ``uidnext`` moves with each message that
comes in (and only then). ``uidvalidity`` is the mailbox's creation time in seconds:
a mailbox deleted and created again under the same name starts over with a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, to_item

# The tenant of an address registered without one: addresses from before tenants were recorded on them, and a
# catch-all address created on first use (register it under a tenant beforehand to give it to that tenant).
DEFAULT_TENANT = "default"
# Every address has these, each with its role: the special-use mailboxes of RFC 6154 that mail clients look for (a
# client with no Sent to APPEND its sent copy to reports every send as half-failed). Listed in this order.
SYSTEM_MAILBOXES = (
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sent", "Sent"),
    ("junk", "Junk"),
    ("archive", "Archive"),
    ("trash", "Trash"),
)
SYSTEM_ROLES = frozenset(key for key, _ in SYSTEM_MAILBOXES)
SEEN, FLAGGED, ANSWERED, DELETED = "$seen", "$flagged", "$answered", "$deleted"
CHANGE_LOG_DAYS = 30
MAX_TRANSACTION_ATTEMPTS = 8  # contention on one mailbox's modseq; backoff below doubles from 20 ms
MAX_PAGE = 200
MAX_FILTER_ROUNDS = 5  # Query calls per filtered page before a short page is returned with a cursor
MAX_FILTER_SCANNED = 2000
_MODSEQ_DIGITS = 20
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


class MailboxError(Exception):
    pass


class AddressNotFoundError(MailboxError):
    pass


class MailboxNotFoundError(MailboxError):
    pass


class MailNotFoundError(MailboxError):
    pass


class MailboxConflictError(MailboxError):
    """The mailbox kept changing under us (or the operation does not fit its current state)."""


class MailModifiedError(MailboxError):
    """A conditional change found the message changed since the modseq the client named (IMAP UNCHANGEDSINCE)."""


class CannotCalculateChangesError(MailboxError):
    """The state is older than the oldest kept change (or newer than the mailbox): the client must resync."""


# -- ids -------------------------------------------------------------------------------------------------------------


def _b32(value: int, length: int) -> str:
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(length - 1, -1, -1))


def time_prefix(ms: int) -> str:
    """The first ten ULID characters for a time in milliseconds: sorts like the time."""
    return _b32(ms, 10)


def mail_ulid(received_ms: int, *seed: str) -> str:
    """A ULID whose random part is derived from ``seed`` (the SES message id and the recipient), so a redelivered
    SES event files the same message under the same id instead of twice."""
    if seed:
        digest = int.from_bytes(hashlib.sha256("\0".join(seed).encode()).digest()[:10], "big")
    else:
        digest = random.getrandbits(80)
    return time_prefix(received_ms) + _b32(digest, 16)


def mailbox_id(address: str, key: str) -> str:
    return f"{address}:{key}"


def split_mailbox_id(value: str) -> tuple[str, str]:
    address, sep, key = value.rpartition(":")
    if not sep or "@" not in address or not key:
        raise MailboxNotFoundError(value)
    return address.lower(), key


def pad(modseq: int) -> str:
    return str(modseq).zfill(_MODSEQ_DIGITS)


# -- values ----------------------------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    id: str
    address: str
    key: str
    name: str
    role: str | None
    total: int
    unread: int
    modseq: int
    uidvalidity: int = 1
    uidnext: int = 1

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "name": self.name,
            "role": self.role,
            "total": self.total,
            "unread": self.unread,
            "state": str(self.modseq),
            "uidvalidity": self.uidvalidity,
            "uidnext": self.uidnext,
        }


@dataclass
class Page:
    items: list[dict[str, Any]]
    cursor: str | None
    scanned: int
    receipts: list[str] = field(default_factory=list)  # each item's receipt id (its stored MIME), in the same order
    heads: list[str | None] = field(default_factory=list)  # each item's header block (base64), when it has one


@dataclass
class Changes:
    since: int
    new_state: int
    has_more: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    # The uids the destroyed messages had here (IMAP QRESYNC's VANISHED); None when an older change item did not
    # record them.
    destroyed_uids: list[int] | None = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    unread: bool | None = None
    flagged: bool | None = None
    from_: str | None = None
    to: str | None = None
    subject: str | None = None
    has_attachment: bool | None = None
    since_ms: int | None = None
    before_ms: int | None = None

    @property
    def filtering(self) -> bool:
        values = (self.unread, self.flagged, self.from_, self.to, self.subject, self.has_attachment)
        return any(v is not None for v in values)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:12]


# Attributes of a message item that list pages return (the *_search copies and keys stay internal).
PUBLIC_FIELDS = (
    "id",
    "mailbox",
    "address",
    "recipient",
    "tag",
    "received_at",
    "size",
    "subject",
    "from",
    "to",
    "cc",
    "message_id",
    "in_reply_to",
    "references",
    "has_attachments",
    "keywords",
    "preview",
    "flags",
    "verdicts",
    "origin",
)


def public_message(item: dict[str, Any]) -> dict[str, Any]:
    result = {name: item.get(name) for name in PUBLIC_FIELDS}
    result["size"] = int(item.get("size", 0))
    result["modseq"] = str(item.get("modseq", 0))
    result["uid"] = int(item.get("uid", 0))
    return result


class MailboxStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    # -- addresses and mailboxes ---------------------------------------------------------------------------------
    def create_address(self, address: str, tenant: str = DEFAULT_TENANT) -> bool:
        """Register an address for a tenant, with its system mailboxes; True if it is new. Idempotent: an address
        registered before keeps its tenant (see :meth:`address_tenant`)."""
        address = address.lower()
        created = self._put_new(
            {
                "pk": f"ADDR#{address}",
                "sk": "ADDR",
                "address": address,
                "tenant": tenant,
                "gsi1pk": "ADDR",
                "gsi1sk": address,
            }
        )
        for key, name in SYSTEM_MAILBOXES:
            self._put_new(self._mailbox_item(address, key, name, role=key))
        return created

    def address_exists(self, address: str) -> bool:
        response = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"ADDR#{address.lower()}", "sk": "ADDR"}), ConsistentRead=True
        )
        return "Item" in response

    def address_tenant(self, address: str) -> str | None:
        """The tenant an address belongs to; None if it is not registered."""
        response = self._ddb.get_item(
            TableName=self._table,
            Key=to_item({"pk": f"ADDR#{address.lower()}", "sk": "ADDR"}),
            ConsistentRead=True,
            ProjectionExpression="tenant",
        )
        if "Item" not in response:
            return None
        return str(from_item(response["Item"]).get("tenant") or DEFAULT_TENANT)

    def list_addresses(self, tenant: str | None = None) -> list[str]:
        """Registered addresses, only one tenant's when ``tenant`` is given."""
        addresses: list[str] = []
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues=to_item({":pk": "ADDR"}),
        ):
            for raw in page.get("Items", []):
                item = from_item(raw)
                if tenant is None or item.get("tenant", DEFAULT_TENANT) == tenant:
                    addresses.append(item["address"])
        return addresses

    def create_mailbox(self, address: str, name: str) -> Mailbox:
        address = address.lower()
        if not self.address_exists(address):
            raise AddressNotFoundError(address)
        if any(m.name.lower() == name.lower() for m in self.mailboxes(address)):
            raise MailboxConflictError(f"{address} already has a mailbox named {name!r}")
        key = "m" + mail_ulid(int(time.time() * 1000))[:16]
        item = self._mailbox_item(address, key, name, role=None)
        self._put_new(item)
        return _mailbox(item)

    def mailboxes(self, address: str) -> list[Mailbox]:
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :mbx)",
            ExpressionAttributeValues=to_item({":pk": f"ADDR#{address.lower()}", ":mbx": "MBX#"}),
            ConsistentRead=True,
        )
        boxes = [_mailbox(from_item(item)) for item in response.get("Items", [])]
        missing = SYSTEM_ROLES - {box.key for box in boxes}
        if boxes and missing:
            # An address registered before Drafts, Sent and Junk existed: they are added on its first listing (the
            # conditional puts make two concurrent listings harmless).
            for key, name in SYSTEM_MAILBOXES:
                if key in missing:
                    self._put_new(self._mailbox_item(address.lower(), key, name, role=key))
            return self.mailboxes(address)  # as stored: a concurrent listing's put may have won
        order = {key: i for i, (key, _) in enumerate(SYSTEM_MAILBOXES)}
        return sorted(boxes, key=lambda m: (order.get(m.key, len(order)), m.name.lower()))

    def mailbox(self, box_id: str) -> Mailbox:
        address, key = split_mailbox_id(box_id)
        response = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"ADDR#{address}", "sk": f"MBX#{key}"}), ConsistentRead=True
        )
        if "Item" not in response:
            raise MailboxNotFoundError(box_id)
        return _mailbox(from_item(response["Item"]))

    def delete_mailbox(self, box_id: str) -> None:
        box = self.mailbox(box_id)
        if box.role:
            raise MailboxConflictError(f"{box.name} is a system mailbox")
        if box.total:
            raise MailboxConflictError(f"{box.name} still holds {box.total} messages; move or expunge them first")
        address, key = split_mailbox_id(box_id)
        self._ddb.delete_item(
            TableName=self._table,
            Key=to_item({"pk": f"ADDR#{address}", "sk": f"MBX#{key}"}),
            ConditionExpression="total = :zero",
            ExpressionAttributeValues=to_item({":zero": 0}),
        )

    # -- receipts ------------------------------------------------------------------------------------------------
    def put_receipt(self, receipt_id: str, values: dict[str, Any]) -> None:
        """The received MIME's S3 objects, counted by the mailbox copies that use them (refs, added per filing)."""
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item({"pk": f"RCV#{receipt_id}", "sk": "RCV"}),
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values) + " ADD refs :zero",
            ExpressionAttributeNames={f"#{k}": k for k in values},
            ExpressionAttributeValues=to_item({**{f":{k}": v for k, v in values.items()}, ":zero": 0}),
        )

    def receipt(self, receipt_id: str) -> dict[str, Any] | None:
        response = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"RCV#{receipt_id}", "sk": "RCV"}), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    def forget_receipt(self, receipt_id: str) -> None:
        self._ddb.delete_item(
            TableName=self._table,
            Key=to_item({"pk": f"RCV#{receipt_id}", "sk": "RCV"}),
            ConditionExpression="refs <= :zero",
            ExpressionAttributeValues=to_item({":zero": 0}),
        )

    # -- filing --------------------------------------------------------------------------------------------------
    def file(self, box_id: str, message: dict[str, Any]) -> bool:
        """File one message (the listing fields; ``id`` and ``receipt`` set). False if it was already filed."""
        mail_id = message["id"]
        keywords = sorted(set(message.get("keywords") or []))
        unread = 0 if SEEN in keywords else 1

        def build(n: int) -> list[dict[str, Any]]:
            item = {
                **message,
                "keywords": keywords,
                "mailbox": box_id,
                "modseq": n,
                "uid": n,
                "pk": f"MBX#{box_id}",
                "sk": f"MSG#{_ulid_of(mail_id)}",
            }
            return [
                {"Put": self._put(item, "attribute_not_exists(pk)")},
                {"Put": self._put(self._pointer(mail_id, box_id, message))},
                self._receipt_refs(message["receipt"], +1),
            ]

        try:
            self._mutate({box_id: (+1, unread)}, build, [(box_id, mail_id, "created")])
        except _ItemConditionFailedError:
            return False  # the same SES event delivered twice: the message is there already
        return True

    def import_messages(self, box_id: str, messages: list[dict[str, Any]]) -> int:
        """Bulk-load index entries (a mailbox migration, a benchmark fill): batch writes instead of one transaction
        per message. The mailbox's modseq steps once per entry in one conditional update (each entry's uid is one of
        those steps, in received order), and the last step is recorded as a ``reset`` change, so a client syncing
        across it is told to list the mailbox again instead of being handed thousands of ids. Entries must be new.
        Returns the count."""
        messages = sorted(messages, key=lambda m: _ulid_of(m["id"]))
        unread = sum(SEEN not in (m.get("keywords") or []) for m in messages)
        address, key = split_mailbox_id(box_id)
        # The uid range is reserved first, so no message filed meanwhile can take one of its numbers. Should the
        # writes below fail part-way, the counts overstate until the entries are written again (the call is
        # repeatable: the same entries land on the same keys).
        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            box = self.mailbox(box_id)
            try:
                self._ddb.update_item(
                    TableName=self._table,
                    Key=to_item({"pk": f"ADDR#{address}", "sk": f"MBX#{key}"}),
                    UpdateExpression="SET modseq = :n, uidnext = :un ADD #total :t, unread :u",
                    ConditionExpression="modseq = :old",
                    ExpressionAttributeNames={"#total": "total"},
                    ExpressionAttributeValues=to_item(
                        {
                            ":n": box.modseq + len(messages),
                            ":un": box.modseq + len(messages) + 1,
                            ":old": box.modseq,
                            ":t": len(messages),
                            ":u": unread,
                        }
                    ),
                )
            except self._ddb.exceptions.ConditionalCheckFailedException:
                continue
            break
        else:
            raise MailboxConflictError("the mailbox is too busy right now; try again")
        receipts: dict[str, int] = {}
        writes: list[dict[str, Any]] = []
        for uid, message in enumerate(messages, start=box.modseq + 1):
            keywords = sorted(set(message.get("keywords") or []))
            receipts[message["receipt"]] = receipts.get(message["receipt"], 0) + 1
            item = {**message, "keywords": keywords, "mailbox": box_id, "modseq": uid, "uid": uid}
            item |= {"pk": f"MBX#{box_id}", "sk": f"MSG#{_ulid_of(message['id'])}"}
            writes += [item, self._pointer(message["id"], box_id, message)]
        for start in range(0, len(writes), 25):  # BatchWriteItem takes at most 25 items
            pending = {self._table: [{"PutRequest": {"Item": to_item(w)}} for w in writes[start : start + 25]]}
            while pending:
                pending = self._ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        for receipt_id, count in receipts.items():
            self._ddb.update_item(**self._receipt_refs(receipt_id, count)["Update"])
        # Changes after the old state now start at the reset entry's number, not at old + 1: "cannot calculate
        # changes", which is the answer a bulk load deserves. Should this write never happen, the gap says the same.
        last = box.modseq + len(messages)
        change = {"pk": f"MBX#{box_id}#CHG", "sk": pad(last), "modseq": last, "id": "*", "kind": "reset"}
        self._ddb.put_item(TableName=self._table, Item=to_item({**change, "at": now_iso()}))
        return len(messages)

    def copy(self, mail_id: str, target: str) -> dict[str, Any]:
        """File a copy of a message in another mailbox of the same address (IMAP COPY): a new id with the same
        received time, the same receipt (its S3 objects gain a reference) and keywords, and a new uid there."""
        target_box = self.mailbox(target)
        where = self.locate(mail_id)
        if split_mailbox_id(where["mailbox"])[0] != target_box.address:
            raise MailboxConflictError("messages are copied only between mailboxes of the same address")
        current = self.message(where["mailbox"], mail_id)
        fields = {k: v for k, v in current.items() if k not in ("pk", "sk", "mailbox", "modseq", "uid")}
        # A random suffix, not a derived one: copying the same message twice makes two copies, as IMAP expects.
        copy_id = "eml_" + _ulid_of(mail_id)[:10] + mail_ulid(0)[10:]
        self.file(target, {**fields, "id": copy_id})
        return self.message(target, copy_id)

    # -- reading -------------------------------------------------------------------------------------------------
    def locate(self, mail_id: str) -> dict[str, Any]:
        """The pointer: which mailbox holds the message now."""
        response = self._ddb.get_item(
            TableName=self._table, Key=to_item({"pk": f"MAIL#{mail_id}", "sk": "MAIL"}), ConsistentRead=True
        )
        if "Item" not in response:
            raise MailNotFoundError(mail_id)
        return from_item(response["Item"])

    def message(self, box_id: str, mail_id: str) -> dict[str, Any]:
        response = self._ddb.get_item(
            TableName=self._table,
            Key=to_item({"pk": f"MBX#{box_id}", "sk": f"MSG#{_ulid_of(mail_id)}"}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise MailNotFoundError(mail_id)
        return from_item(response["Item"])

    def page(self, box_id: str, *, limit: int, cursor: str | None = None, filters: Filters | None = None) -> Page:
        """Newest first. ``cursor`` is what the previous page returned; a filtered page may hold fewer than ``limit``
        messages (DynamoDB filters after reading) and still carry a cursor."""
        filters = filters or Filters()
        limit = max(1, min(limit, MAX_PAGE))
        low = "MSG#" + (time_prefix(filters.since_ms) if filters.since_ms is not None else "")
        high = "MSG#" + (time_prefix(filters.before_ms) if filters.before_ms is not None else "~")
        values: dict[str, Any] = {":pk": f"MBX#{box_id}", ":low": low, ":high": high}
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ScanIndexForward": False,
        }
        expression = _filter_expression(filters, values)
        if expression:
            request["FilterExpression"] = expression
        request["ExpressionAttributeValues"] = to_item(values)
        start = decode_cursor(cursor, box_id, filters) if cursor else None
        found: list[dict[str, Any]] = []
        scanned = 0
        for _ in range(MAX_FILTER_ROUNDS if expression else 1):
            # One more than asked: if it comes back there is a next page, and its cursor is the last item returned.
            batch = limit + 1 - len(found) if not expression else max(4 * limit, 100)
            response = self._ddb.query(**request, Limit=batch, **({"ExclusiveStartKey": start} if start else {}))
            scanned += int(response.get("ScannedCount", 0))
            found += [from_item(item) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if len(found) > limit or start is None or scanned >= MAX_FILTER_SCANNED:
                break
        if len(found) > limit:
            found = found[:limit]
            last = found[-1]
            next_cursor = encode_cursor({"pk": last["pk"], "sk": last["sk"]}, box_id, filters)
        elif start is not None:
            next_cursor = encode_cursor(from_item(start), box_id, filters)
        else:
            next_cursor = None
        receipts = [str(item.get("receipt", "")) for item in found]
        heads = [item.get("head") for item in found]
        return Page([public_message(item) for item in found], next_cursor, scanned, receipts, heads)

    def changes(self, box_id: str, since: int, limit: int) -> Changes:
        box = self.mailbox(box_id)
        if since > box.modseq or since < 0:
            raise CannotCalculateChangesError(f"state {since} is not a state of this mailbox (now {box.modseq})")
        result = Changes(since=since, new_state=since, has_more=False)
        if since == box.modseq:
            return result
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk > :since",
            ExpressionAttributeValues=to_item({":pk": f"MBX#{box_id}#CHG", ":since": pad(since)}),
            ConsistentRead=True,
            Limit=max(1, min(limit, 1000)),
        )
        entries = [from_item(item) for item in response.get("Items", [])]
        if not entries or int(entries[0]["modseq"]) != since + 1:
            raise CannotCalculateChangesError(f"changes after state {since} are no longer kept; list the mailbox again")
        state: dict[str, str] = {}  # id -> created | updated | destroyed, folded in order
        for entry in entries:
            mail_id, kind = entry["id"], entry["kind"]
            if kind == "reset":
                raise CannotCalculateChangesError(
                    f"the mailbox was bulk-loaded at state {entry['modseq']}; list it again"
                )
            before = state.get(mail_id)
            if kind == "destroyed" and result.destroyed_uids is not None:
                if entry.get("uid"):
                    result.destroyed_uids.append(int(entry["uid"]))
                else:
                    result.destroyed_uids = None  # written before uids were recorded: unknown
            if kind == "destroyed":
                state[mail_id] = "gone" if before == "created" else "destroyed"
            elif kind == "created":
                state[mail_id] = "updated" if before == "destroyed" else "created"
            elif before not in ("created", "destroyed"):
                state[mail_id] = "updated"
        result.new_state = int(entries[-1]["modseq"])
        result.has_more = result.new_state < box.modseq
        for mail_id, kind in state.items():
            if kind != "gone":
                getattr(result, kind).append(mail_id)
        return result

    # -- changing ------------------------------------------------------------------------------------------------
    def set_keywords(
        self, mail_id: str, add: Iterable[str], remove: Iterable[str], *, unchanged_since: int | None = None
    ) -> dict[str, Any]:
        """Add and remove keywords. With ``unchanged_since``, only if the message's modseq is still at most that
        (RFC 7162 UNCHANGEDSINCE): the write is conditioned on the modseq read, so the check and the change are one."""
        where = self.locate(mail_id)
        box_id = where["mailbox"]
        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            current = self.message(box_id, mail_id)
            if unchanged_since is not None and int(current.get("modseq", 0)) > unchanged_since:
                raise MailModifiedError(f"{mail_id} changed after modseq {unchanged_since}")
            old = set(current.get("keywords") or [])
            new = (old | set(add)) - set(remove)
            if new == old:
                return current
            unread = (SEEN not in new) - (SEEN not in old)

            def build(n: int, current: dict[str, Any] = current, new: set[str] = new) -> list[dict[str, Any]]:
                return [
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": to_item({"pk": current["pk"], "sk": current["sk"]}),
                            "UpdateExpression": "SET keywords = :k, modseq = :n",
                            "ConditionExpression": "modseq = :old",
                            "ExpressionAttributeValues": to_item(
                                {":k": sorted(new), ":n": n, ":old": current["modseq"]}
                            ),
                        }
                    }
                ]

            try:
                self._mutate({box_id: (0, unread)}, build, [(box_id, mail_id, "updated")])
            except _ItemConditionFailedError:
                continue  # someone else changed the message: read it again
            return self.message(box_id, mail_id)
        raise MailboxConflictError(f"{mail_id} kept changing; try again")

    def move(self, mail_id: str, target: str) -> dict[str, Any]:
        target_box = self.mailbox(target)  # raises when it does not exist
        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            where = self.locate(mail_id)
            source = where["mailbox"]
            if source == target:
                return self.message(source, mail_id)
            if split_mailbox_id(source)[0] != target_box.address:
                raise MailboxConflictError("messages move only between mailboxes of the same address")
            current = self.message(source, mail_id)
            unread = 0 if SEEN in (current.get("keywords") or []) else 1

            def build(n: int, current: dict[str, Any] = current, source: str = source) -> list[dict[str, Any]]:
                moved = {**current, "pk": f"MBX#{target}", "mailbox": target, "modseq": n, "uid": n}
                return [
                    self._delete_unchanged(current),
                    {"Put": self._put(moved, "attribute_not_exists(pk)")},
                    {"Put": self._put(self._pointer(mail_id, target, current))},
                ]

            try:
                self._mutate(
                    {source: (-1, -unread), target: (+1, unread)},
                    build,
                    [(source, mail_id, "destroyed", int(current.get("uid", 0))), (target, mail_id, "created")],
                )
            except _ItemConditionFailedError:
                continue
            return self.message(target, mail_id)
        raise MailboxConflictError(f"{mail_id} kept changing; try again")

    def expunge(self, mail_id: str) -> str:
        """Remove one message for good; returns its receipt id (whose S3 objects may now be unused)."""
        for _ in range(MAX_TRANSACTION_ATTEMPTS):
            where = self.locate(mail_id)
            box_id = where["mailbox"]
            current = self.message(box_id, mail_id)
            unread = 0 if SEEN in (current.get("keywords") or []) else 1

            def build(n: int, current: dict[str, Any] = current) -> list[dict[str, Any]]:
                return [
                    self._delete_unchanged(current),
                    {"Delete": {"TableName": self._table, "Key": to_item({"pk": f"MAIL#{mail_id}", "sk": "MAIL"})}},
                    self._receipt_refs(current["receipt"], -1),
                ]

            try:
                self._mutate(
                    {box_id: (-1, -unread)}, build, [(box_id, mail_id, "destroyed", int(current.get("uid", 0)))]
                )
            except _ItemConditionFailedError:
                continue
            return str(current["receipt"])
        raise MailboxConflictError(f"{mail_id} kept changing; try again")

    def deleted_in(self, box_id: str, ids: Iterable[str] | None = None) -> list[str]:
        """Ids in the mailbox carrying ``$deleted`` (optionally only among ``ids``): what EXPUNGE removes."""
        if ids is not None:
            found = []
            for mail_id in ids:
                try:
                    item = self.message(box_id, mail_id)
                except MailNotFoundError:
                    continue
                if DELETED in (item.get("keywords") or []):
                    found.append(mail_id)
            return found
        found = []
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :msg)",
            FilterExpression="contains(keywords, :deleted)",
            ExpressionAttributeValues=to_item({":pk": f"MBX#{box_id}", ":msg": "MSG#", ":deleted": DELETED}),
            ExpressionAttributeNames={"#id": "id"},
            ProjectionExpression="#id",
        ):
            found += [from_item(item)["id"] for item in page.get("Items", [])]
        return found

    # -- the modseq transaction ----------------------------------------------------------------------------------
    def _mutate(
        self,
        counts: dict[str, tuple[int, int]],
        build: Callable[..., list[dict[str, Any]]],
        changes: list[tuple[str, str, str] | tuple[str, str, str, int]],
    ) -> None:
        """Run ``build(n)``'s writes with each mailbox's modseq advanced (total/unread adjusted by ``counts``) and its
        change items written, as one transaction; retried while another writer wins the modseq race."""
        delay = 0.02
        for attempt in range(MAX_TRANSACTION_ATTEMPTS):
            boxes = {box_id: self.mailbox(box_id) for box_id in counts}
            next_seq = {box_id: box.modseq + 1 for box_id, box in boxes.items()}
            # The message's own modseq is the one of the mailbox it ends up in (the last one named).
            items = build(next_seq[list(counts)[-1]])
            own = len(items)
            expires = int(time.time()) + CHANGE_LOG_DAYS * 86400
            receiving = {change[0] for change in changes if change[2] == "created"}
            for box_id, (total, unread) in counts.items():
                address, key = split_mailbox_id(box_id)
                values = {":n": next_seq[box_id], ":old": boxes[box_id].modseq, ":t": total, ":u": unread}
                setting = "SET modseq = :n"
                if box_id in receiving:  # the new message's uid is :n, so the next one is :n + 1
                    setting += ", uidnext = :un"
                    values[":un"] = next_seq[box_id] + 1
                items.append(
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": to_item({"pk": f"ADDR#{address}", "sk": f"MBX#{key}"}),
                            "UpdateExpression": setting + " ADD #total :t, unread :u",
                            "ConditionExpression": "modseq = :old",
                            "ExpressionAttributeNames": {"#total": "total"},
                            "ExpressionAttributeValues": to_item(values),
                        }
                    }
                )
            for box_id, mail_id, kind, *uid in changes:
                n = next_seq[box_id]
                change = {"pk": f"MBX#{box_id}#CHG", "sk": pad(n), "modseq": n, "id": mail_id, "kind": kind}
                if uid:  # a destroyed message's uid: IMAP QRESYNC reports it as VANISHED (RFC 7162 3.2)
                    change["uid"] = uid[0]
                items.append({"Put": self._put({**change, "at": now_iso(), "expires_at": expires})})
            try:
                self._ddb.transact_write_items(TransactItems=items)
                return
            except self._ddb.exceptions.TransactionCanceledException as error:
                reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
                if any(code == "ConditionalCheckFailed" for code in reasons[:own]):
                    raise _ItemConditionFailedError from None
                if not any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in reasons[own:]):
                    raise
            time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not cryptography
            delay = min(delay * 2, 1.0)
            del attempt
        raise MailboxConflictError("the mailbox is too busy right now; try again")

    # -- item helpers --------------------------------------------------------------------------------------------
    def _put(self, item: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self._table, "Item": to_item(item)}
        if condition:
            put["ConditionExpression"] = condition
        return put

    def _delete_unchanged(self, current: dict[str, Any]) -> dict[str, Any]:
        """Delete a message item only if no one changed it since it was read (its modseq is still the one read)."""
        return {
            "Delete": {
                "TableName": self._table,
                "Key": to_item({"pk": current["pk"], "sk": current["sk"]}),
                "ConditionExpression": "modseq = :old",
                "ExpressionAttributeValues": to_item({":old": current["modseq"]}),
            }
        }

    def _put_new(self, item: dict[str, Any]) -> bool:
        try:
            self._ddb.put_item(
                TableName=self._table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _receipt_refs(self, receipt_id: str, delta: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": to_item({"pk": f"RCV#{receipt_id}", "sk": "RCV"}),
                "UpdateExpression": "ADD refs :d",
                "ExpressionAttributeValues": to_item({":d": delta}),
            }
        }

    @staticmethod
    def _pointer(mail_id: str, box_id: str, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "pk": f"MAIL#{mail_id}",
            "sk": "MAIL",
            "mailbox": box_id,
            "address": split_mailbox_id(box_id)[0],
            "receipt": message["receipt"],
        }

    @staticmethod
    def _mailbox_item(address: str, key: str, name: str, *, role: str | None) -> dict[str, Any]:
        return {
            "pk": f"ADDR#{address}",
            "sk": f"MBX#{key}",
            "id": mailbox_id(address, key),
            "address": address,
            "key": key,
            "name": name,
            "role": role,
            "total": 0,
            "unread": 0,
            "modseq": 0,
            "uidvalidity": int(time.time()),
            "created_at": now_iso(),
        }


class _ItemConditionFailedError(Exception):
    """A condition on the message items themselves failed (not the modseq race)."""


def _ulid_of(mail_id: str) -> str:
    return mail_id.removeprefix("eml_")


def _mailbox(item: dict[str, Any]) -> Mailbox:
    return Mailbox(
        id=item["id"],
        address=item["address"],
        key=item["key"],
        name=item["name"],
        role=item.get("role"),
        total=int(item.get("total", 0)),
        unread=int(item.get("unread", 0)),
        modseq=int(item.get("modseq", 0)),
        uidvalidity=int(item.get("uidvalidity", 1)),
        # One more than the last uid given; it moves only when a message comes in (IMAP clients watch it for new
        # mail), not with flag changes. Every uid is a modseq step, so modseq + 1 is a safe bound where it is unset.
        uidnext=int(item.get("uidnext", int(item.get("modseq", 0)) + 1)),
    )


def _filter_expression(filters: Filters, values: dict[str, Any]) -> str:
    clauses = []
    if filters.unread is not None:
        values[":seen"] = SEEN
        clauses.append("NOT contains(keywords, :seen)" if filters.unread else "contains(keywords, :seen)")
    if filters.flagged is not None:
        values[":flagged"] = FLAGGED
        clauses.append("contains(keywords, :flagged)" if filters.flagged else "NOT contains(keywords, :flagged)")
    for name, attribute, value in (
        ("from", "from_search", filters.from_),
        ("to", "to_search", filters.to),
        ("subject", "subject_search", filters.subject),
    ):
        if value:
            values[f":{name}"] = value.lower()
            clauses.append(f"contains({attribute}, :{name})")
    if filters.has_attachment is not None:
        values[":att"] = filters.has_attachment
        clauses.append("has_attachments = :att")
    return " AND ".join(clauses)


# -- cursors ---------------------------------------------------------------------------------------------------------


class InvalidCursorError(MailboxError):
    pass


def encode_cursor(key: dict[str, Any], box_id: str, filters: Filters) -> str:
    """Opaque to clients; bound to the mailbox and the filters so a cursor cannot be replayed elsewhere."""
    payload = json.dumps({"sk": key["sk"], "m": box_id, "f": filters.fingerprint()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, box_id: str, filters: Filters) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        sk = data["sk"]
        valid = (
            isinstance(sk, str) and sk.startswith("MSG#") and data["m"] == box_id and data["f"] == filters.fingerprint()
        )
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise InvalidCursorError("the cursor is not one this mailbox listing returned (with these filters)")
    return to_item({"pk": f"MBX#{box_id}", "sk": sk})
