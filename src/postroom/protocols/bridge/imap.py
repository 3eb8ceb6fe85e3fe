"""IMAP4rev1 for desktop and phone mail clients, over the mailbox HTTP API.

The protocol is Twisted's (``twisted.mail.imap4``: a maintained server implementation with the parser, FETCH
spewing, BODYSTRUCTURE, SEARCH and IDLE); this module supplies the account, mailbox and message objects it drives,
plus what the server lacks, all here: MOVE (RFC 6851), UIDNEXT/PERMANENTFLAGS on SELECT, \\Seen on a non-PEEK body
fetch, exact header bytes for BODY[HEADER...] (from the listing's header block when it carries one), APPEND into any
folder, UIDPLUS (RFC 4315), ENABLE (RFC 5161), CONDSTORE and QRESYNC (RFC 7162: SELECT parameters, FETCH and STORE
modifiers, the MODSEQ item and search key, VANISHED), and changes made elsewhere announced on NOOP, CHECK and IDLE.

Login: the user name is the mailbox address, the password a Postroom API key with ``mailbox:read`` (and
``mailbox:write`` to change anything) for that address. Folders are the address's mailboxes: ``INBOX``, the
special-use ``Drafts``, ``Sent``, ``Junk``, ``Archive`` and ``Trash`` (RFC 6154), and any created ones.

UIDs come from the store (see ``postroom.mailbox.mailbox_store``): a message's uid is fixed while it stays in a mailbox
and larger than any uid before it, and UIDVALIDITY is the mailbox's creation time, so a client's cache stays valid
across sessions; MODSEQ is the store's per-message modseq, HIGHESTMODSEQ the mailbox's state. Every API call runs on
the reactor's thread pool; the IMAP connection queues the client's next command until the current one has answered,
so pipelined commands see each other's effects in order.
"""

# Twisted's interfaces and command tables are camelCase and UPPER_case; the names here must match them.
# ruff: noqa: N802, N803, N815

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.utils import format_datetime
from http import HTTPStatus
from io import BytesIO
from typing import Any

from twisted.internet import defer, task, threads
from twisted.internet.protocol import Factory
from twisted.mail import imap4
from zope.interface import implementer

from postroom.protocols.bridge.login import GuardedPortal, api_portal
from postroom.protocols.bridge.mailbox_client import Listing, MailApi, MailApiError
from postroom.protocols.bridge.mime_view import MimePart, header_fields, split_header
from postroom.protocols.submission.api_client import PostroomClient
from postroom.protocols.submission.smtp_listener import FAILED_LOGIN_WINDOW, FAILED_LOGINS_ALLOWED, RateLimiter

FLAG_KEYWORDS = {
    "\\seen": "$seen",
    "\\flagged": "$flagged",
    "\\answered": "$answered",
    "\\deleted": "$deleted",
    "\\draft": "$draft",
}
KEYWORD_FLAGS = {
    "$seen": "\\Seen",
    "$flagged": "\\Flagged",
    "$answered": "\\Answered",
    "$deleted": "\\Deleted",
    "$draft": "\\Draft",
}
SYSTEM_FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "\\Deleted", "\\Draft"]
_KEYWORD = re.compile(r"^\$?[a-z0-9_.-]{1,64}$")  # what the API accepts (api/mail.py)
# RFC 6154, so clients find them without asking (and file sent copies and drafts where the other clients look).
SPECIAL_USE = {
    "drafts": "\\Drafts",
    "sent": "\\Sent",
    "junk": "\\Junk",
    "archive": "\\Archive",
    "trash": "\\Trash",
}
MAX_APPEND_BYTES = 4 * 1024 * 1024  # base64 in a JSON body must stay under the API's 6 MB (Lambda's payload cap)
# Search keys that need the message itself; the rest are answered from the listing.
_CONTENT_SEARCH = {b"FROM", b"TO", b"CC", b"BCC", b"SUBJECT", b"HEADER", b"BODY", b"TEXT"}
_CONTENT_SEARCH |= {b"SENTBEFORE", b"SENTON", b"SENTSINCE"}
# A line of search keys that ends in a synchronizing literal (RFC 3501 4.3: "{" number "}" CRLF, then the octets).
_TRAILING_LITERAL = re.compile(rb"\{([0-9]+)\}\Z")
MAX_SEARCH_BYTES = 64 * 1024  # one SEARCH's keys with all its literals; no client's search comes near
# What the search steps decode the client's strings as (RFC 3501 6.4.4: others are refused with BADCHARSET).
SEARCH_CHARSETS = ("UTF-8", "US-ASCII")
# Fetch items answered without the message content.
_LISTING_ITEMS = {"uid", "flags", "internaldate", "rfc822size", "modseq"}
# FETCH modifiers (RFC 7162 3.1.4, 3.2.6): "(CHANGEDSINCE <modseq>)", with VANISHED for UID FETCH under QRESYNC.
_FETCH_MODIFIERS = re.compile(
    rb"\s*\(((?:CHANGEDSINCE\s+[0-9]+|VANISHED)(?:\s+(?:CHANGEDSINCE\s+[0-9]+|VANISHED))*)\)\s*\Z", re.I
)
_MODSEQ_ITEM = re.compile(rb"(?<![\w.\[-])MODSEQ(?![\w.\]-])", re.I)  # the fetch item, not a header name in a section
# STORE's modifier (RFC 7162 3.1.3): "STORE <set> (UNCHANGEDSINCE <modseq>) +FLAGS ...".
_STORE_MODIFIER = re.compile(rb"\s*\(\s*UNCHANGEDSINCE\s+([0-9]{1,20})\s*\)\s*", re.I)
log = logging.getLogger(__name__)
DOWNLOADERS = 8  # raw messages fetched at once when a FETCH spans many
# How often an IDLE session reads its mailbox's state (one small API call: the mailbox item, no listing unless the state
# moved), so new mail is announced within about this long. The API's load per idle session stays at one such call per
# interval; a long poll would serve it with fewer calls, but the mailbox function serves one request at a time locally
# (and a held Lambda is billed for the wait), so the check is short and frequent instead.
IDLE_CHECK_SECONDS = 1.0


def keyword_of(flag: str) -> str:
    return FLAG_KEYWORDS.get(flag.lower(), flag.lower())


def flag_of(keyword: str) -> str:
    return KEYWORD_FLAGS.get(keyword, keyword)


# -- credentials -----------------------------------------------------------------------------------------------------


# -- account ---------------------------------------------------------------------------------------------------------


@implementer(imap4.IMailboxInfo)
@dataclass
class FolderInfo:
    """What LIST shows of a mailbox: its attributes (getFlags here means attributes, as Twisted uses it)."""

    attributes: list[str]

    def getFlags(self) -> list[str]:
        return self.attributes

    def getHierarchicalDelimiter(self) -> str:
        return "/"


def folder_name(box: dict[str, Any]) -> str:
    return "INBOX" if box.get("role") == "inbox" else str(box["name"])


@implementer(imap4.IAccount, imap4.INamespacePresenter)
class Account:
    def __init__(self, api: MailApi, address: str) -> None:
        self.api = api
        self.address = address

    def _folders(self) -> dict[str, dict[str, Any]]:
        return {folder_name(box): box for box in self.api.mailboxes(self.address)}

    def _find(self, name: str) -> dict[str, Any] | None:
        folders = self._folders()
        if name.upper() == "INBOX":
            return folders.get("INBOX")
        return folders.get(name) or next((b for n, b in folders.items() if n.lower() == name.lower()), None)

    def listMailboxes(self, ref: str, wildcard: str) -> defer.Deferred[list[tuple[str, FolderInfo]]]:
        pattern = imap4.wildcardToRegexp(ref + wildcard, "/")

        def listed() -> list[tuple[str, FolderInfo]]:
            found = []
            for name, box in self._folders().items():
                if pattern.match(name):
                    extra = [SPECIAL_USE[box["role"]]] if box.get("role") in SPECIAL_USE else []
                    found.append((name, FolderInfo(["\\HasNoChildren", *extra])))
            return found

        return threads.deferToThread(listed)

    def select(self, name: str, rw: bool = True) -> defer.Deferred[Mailbox | None]:
        def selected() -> Mailbox | None:
            box = self._find(name)
            return Mailbox(self.api, box, writeable=bool(rw)) if box else None

        return threads.deferToThread(selected)

    def create(self, pathspec: str) -> bool:
        # Twisted's CREATE is synchronous: one short API call, on the reactor thread.
        name = pathspec.rstrip("/")
        if name.upper() == "INBOX" or "/" in name:
            raise imap4.MailboxException("Postroom mailboxes are one level deep and INBOX exists already")
        try:
            self.api.create_mailbox(self.address, name)
        except MailApiError as error:
            raise imap4.MailboxException(str(error)) from None
        return True

    def delete(self, name: str) -> bool:
        box = self._find(name)
        if box is None:
            raise imap4.MailboxException("No such mailbox")
        try:
            self.api.delete_mailbox(str(box["id"]))
        except MailApiError as error:
            raise imap4.MailboxException(str(error)) from None
        return True

    def rename(self, _old: str, _new: str) -> bool:
        raise imap4.MailboxException("Postroom cannot rename a mailbox; create a new one and move the messages")

    def isSubscribed(self, _name: str) -> bool:
        return True

    def subscribe(self, _name: str) -> bool:
        return True

    def unsubscribe(self, _name: str) -> bool:
        raise imap4.MailboxException("Postroom mailboxes are always subscribed")

    def addMailbox(self, _name: str, _mbox: Any = None) -> bool:
        raise imap4.MailboxException("use CREATE")

    def getPersonalNamespaces(self) -> list[list[str]]:
        return [["", "/"]]

    def getSharedNamespaces(self) -> None:
        return None

    def getOtherNamespaces(self) -> None:
        return None

    getUserNamespaces = getOtherNamespaces


# -- mailbox ---------------------------------------------------------------------------------------------------------


@dataclass
class Changes:
    """What a sync found, in the order IMAP announces it."""

    expunged: list[tuple[int, int]] = field(default_factory=list)  # (sequence number, uid), highest first
    exists: int | None = None
    flags: dict[int, Listing] = field(default_factory=dict)  # sequence number -> the message as it is now


@implementer(imap4.IMailbox, imap4.IMessageCopier, imap4.ICloseableMailbox)
class Mailbox:
    def __init__(self, api: MailApi, box: dict[str, Any], *, writeable: bool) -> None:
        self.api = api
        self.box = box
        self.id = str(box["id"])
        self.writeable = writeable
        self.messages: list[Listing] = []  # sequence order: uid ascending
        self.state: int | None = None  # None until listed
        self.listeners: list[Any] = []
        self.want_content = False  # set by the server for a FETCH or SEARCH that reads the messages
        self._raw: dict[str, bytes] = {}

    # -- loading and syncing -----------------------------------------------------------------------------------
    def load(self) -> defer.Deferred[None]:
        def listed() -> None:
            self.state, self.messages = self.api.listing(self.id)

        return threads.deferToThread(listed)

    def sync(self) -> defer.Deferred[Changes]:
        """Catch up with changes made elsewhere (other clients, the API, new mail)."""
        return threads.deferToThread(self._sync)

    def _sync(self) -> Changes:
        box = self.api.mailbox(self.id)
        changes = Changes()
        if self.state is not None and int(box["state"]) == self.state:
            return changes
        self.box = box
        state, fresh = self.api.listing(self.id, box)  # the read above comes before the pages: no second read
        now = {m.uid: m for m in fresh}
        for seq in range(len(self.messages), 0, -1):  # highest first: each number stays valid as others go
            if self.messages[seq - 1].uid not in now:
                changes.expunged.append((seq, self.messages[seq - 1].uid))
        before = {m.uid: m for m in self.messages}
        arrived = [m for m in fresh if m.uid not in before]  # new uids are above every uid held: they go last
        self.messages = [now[m.uid] for m in self.messages if m.uid in now] + arrived
        for seq, message in enumerate(self.messages, start=1):
            old = before.get(message.uid)
            if old is not None and sorted(old.keywords) != sorted(message.keywords):
                changes.flags[seq] = message
        if arrived:
            changes.exists = len(self.messages)
        self.state = state
        return changes

    # -- what SELECT and STATUS report -------------------------------------------------------------------------
    def getFlags(self) -> list[str]:
        return []  # LIST attributes (Twisted reads both through getFlags); message flags: permanent_flags

    def message_flags(self) -> list[str]:
        custom = sorted({k for m in self.messages for k in m.keywords if k not in KEYWORD_FLAGS})
        return SYSTEM_FLAGS + custom

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def vanished_since(self, modseq: int, requested: imap4.MessageSet | None) -> defer.Deferred[bytes]:
        """The uids of messages expunged or moved out since a modseq (limited to ``requested``, all when None), as a
        sequence set: from the store's change log, which records each destroyed message's uid. When the log cannot
        say (the modseq is older than what it keeps, or its items predate uids), every uid of the requested set below
        UIDNEXT that is not here - RFC 7162 3.2.5.1 lets a server send more than was expunged since, and a client
        ignores uids it does not hold."""
        return threads.deferToThread(self._vanished_since, modseq, requested)

    def _vanished_since(self, modseq: int, requested: imap4.MessageSet | None) -> bytes:
        ceiling = self.getUIDNext() - 1
        present = {m.uid for m in self.messages}
        if requested is None:
            requested = imap4.MessageSet(1, max(ceiling, 1))
        with contextlib.suppress(ValueError):
            requested.last = max(ceiling, 1)
        known: list[int] | None = []
        since = modseq
        while known is not None:
            page = self.api.changes(self.id, since)
            if page is None or page.get("destroyed_uids") is None:
                known = None
                break
            known += [int(uid) for uid in page["destroyed_uids"]]
            since = int(page["new_state"])
            if not page.get("has_more") or since <= modseq:
                break
        if known is None:
            return _vanished(requested, sorted(present), ceiling)
        return _id_set(sorted({uid for uid in known if uid in requested and uid not in present}))

    def highest_modseq(self) -> int:
        """HIGHESTMODSEQ (RFC 7162): the mailbox's state, or a message's modseq when the pages read after the state
        saw a newer change."""
        return max([self.state or int(self.box.get("state") or 0), *(m.modseq for m in self.messages)])

    def getUIDValidity(self) -> int:
        return int(self.box.get("uidvalidity") or 1)

    def getUIDNext(self) -> int:
        highest = self.messages[-1].uid if self.messages else 0
        return max(int(self.box.get("uidnext") or 1), highest + 1)

    def getUID(self, seq: int) -> int:
        return self.messages[seq - 1].uid

    def getMessageCount(self) -> int:
        return len(self.messages) if self.state is not None else int(self.box.get("total") or 0)

    def getRecentCount(self) -> int:
        return 0

    def getUnseenCount(self) -> int:
        if self.state is None:
            return int(self.box.get("unread") or 0)
        return sum("$seen" not in m.keywords for m in self.messages)

    def first_unseen(self) -> int | None:
        return next((seq for seq, m in enumerate(self.messages, 1) if "$seen" not in m.keywords), None)

    def isWriteable(self) -> bool:
        return self.writeable

    def destroy(self) -> None:
        raise imap4.MailboxException("use DELETE")

    def requestStatus(self, names: Iterable[str]) -> dict[str, int]:
        values = {
            "MESSAGES": int(self.box.get("total") or 0),
            "RECENT": 0,
            "UIDNEXT": self.getUIDNext(),
            "UIDVALIDITY": self.getUIDValidity(),
            "UNSEEN": int(self.box.get("unread") or 0),
            "HIGHESTMODSEQ": int(self.box.get("state") or 0),
        }
        return {name: values[name] for name in names if name in values}

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def addMessage(self, message: Any, flags: Iterable[str] = (), date: str | None = None) -> defer.Deferred[int]:
        """APPEND: the message stored through the API with its flags and internal date; its uid."""
        keywords = sorted({keyword_of(f) for f in flags if f.lower() != "\\recent"})
        bad = [k for k in keywords if not _KEYWORD.fullmatch(k)]
        if bad:
            return defer.fail(imap4.MailboxException(f"Postroom cannot store the keyword {bad[0]}"))
        try:
            moment = _internal_date(date)
        except ValueError:
            return defer.fail(imap4.IllegalClientResponse(f"not an IMAP date-time: {date}"))
        message.seek(0)
        raw = message.read()
        if len(raw) > MAX_APPEND_BYTES:
            return defer.fail(imap4.MailboxException(f"[TOOBIG] messages of at most {MAX_APPEND_BYTES} octets"))
        return threads.deferToThread(lambda: self.api.append(self.id, raw, keywords, moment).uid)

    def close(self) -> None:
        self._raw.clear()

    # -- messages ----------------------------------------------------------------------------------------------
    def resolve(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, Listing]]:
        """The (sequence number, message) pairs a message set names, by uid or by sequence number."""
        if not self.messages:
            return []
        with contextlib.suppress(ValueError):  # already set by an earlier pass over the same set
            messages.last = self.messages[-1].uid if uid else len(self.messages)
        if uid:
            return [(seq, m) for seq, m in enumerate(self.messages, 1) if m.uid in messages]
        return [(seq, self.messages[seq - 1]) for seq in range(1, len(self.messages) + 1) if seq in messages]

    def fetch(self, messages: imap4.MessageSet, uid: bool) -> defer.Deferred[list[tuple[int, Message]]]:
        found = self.resolve(messages, uid)
        if not self.want_content:
            return defer.succeed([(seq, Message(self, m)) for seq, m in found])
        return threads.deferToThread(self._download, found)

    def _download(self, found: list[tuple[int, Listing]]) -> list[tuple[int, Message]]:
        missing = [m.id for _, m in found if m.id not in self._raw]
        if missing:
            with ThreadPoolExecutor(max_workers=min(DOWNLOADERS, len(missing))) as pool:
                for mail_id, raw in zip(missing, pool.map(self.api.raw, missing), strict=True):
                    self._raw[mail_id] = raw
        return [(seq, Message(self, m)) for seq, m in found]

    def raw(self, mail_id: str) -> bytes:
        if mail_id not in self._raw:
            self._raw[mail_id] = self.api.raw(mail_id)  # a blocking read: only when no FETCH prefetched it
        return self._raw[mail_id]

    def store(
        self, messages: imap4.MessageSet, flags: list[str], mode: int, uid: bool
    ) -> defer.Deferred[dict[int, list[str]]]:
        """IMailbox's STORE (the server's own do_STORE calls :meth:`store_flags`)."""
        return self.store_flags(messages, flags, mode, uid).addCallback(
            lambda done: {seq: [flag_of(k) for k in m.keywords] for seq, m in done[0].items()}
        )

    def store_flags(
        self, messages: imap4.MessageSet, flags: list[str], mode: int, uid: bool, unchanged_since: int | None = None
    ) -> defer.Deferred[tuple[dict[int, Listing], list[int]]]:
        """Set, add (mode 1) or remove (-1) flags: the messages as they are now, and the sequence numbers of those
        left alone because they changed after ``unchanged_since`` (RFC 7162 conditional STORE)."""
        if not self.writeable:
            return defer.fail(imap4.ReadOnlyMailbox())
        keywords = {keyword_of(f) for f in flags}
        bad = sorted(k for k in keywords if not _KEYWORD.fullmatch(k))
        if bad:
            return defer.fail(imap4.MailboxException(f"Postroom cannot store the keyword {bad[0]}"))
        found = self.resolve(messages, uid)
        return threads.deferToThread(self._store, found, keywords, mode, unchanged_since)

    def _store(
        self, found: list[tuple[int, Listing]], keywords: set[str], mode: int, unchanged_since: int | None = None
    ) -> tuple[dict[int, Listing], list[int]]:
        def one(pair: tuple[int, Listing]) -> tuple[int, Listing | None]:
            seq, message = pair
            if unchanged_since is not None and message.modseq > unchanged_since:
                return seq, None  # known to have changed: no call needed
            old = set(message.keywords)
            new = old | keywords if mode > 0 else old - keywords if mode < 0 else keywords
            changes = {k: True for k in new - old} | {k: False for k in old - new}
            if changes or unchanged_since is not None:
                try:
                    # With nothing to change, a conditional STORE still asks: the answer says whether it held.
                    updated = self.api.set_keywords(message.id, changes, unchanged_since)
                except MailApiError as error:
                    if error.status == HTTPStatus.PRECONDITION_FAILED:
                        return seq, None
                    raise
                message.keywords, message.modseq = updated.keywords, updated.modseq
            return seq, message

        with ThreadPoolExecutor(max_workers=DOWNLOADERS) as pool:
            results = list(pool.map(one, found))
        return {seq: m for seq, m in results if m is not None}, [seq for seq, m in results if m is None]

    def mark_seen(self, found: list[tuple[int, Message]]) -> defer.Deferred[Any]:
        unseen = [(seq, m.listing) for seq, m in found if "$seen" not in m.listing.keywords]
        if not unseen or not self.writeable:
            return defer.succeed(None)
        return threads.deferToThread(self._store, unseen, {"$seen"}, 1)

    def expunge(self) -> defer.Deferred[list[tuple[int, int]]]:
        return threads.deferToThread(self._expunge, None)

    def expunge_uids(self, messages: imap4.MessageSet) -> defer.Deferred[list[tuple[int, int]]]:
        return threads.deferToThread(self._expunge, {m.uid for _, m in self.resolve(messages, True)})

    def _expunge(self, uids: set[int] | None) -> list[tuple[int, int]]:
        doomed = [m for m in self.messages if "$deleted" in m.keywords and (uids is None or m.uid in uids)]
        if not doomed:
            return []
        gone = set(self.api.expunge(self.id, [m.id for m in doomed]))
        return self._drop(lambda m: m.id in gone)

    def _drop(self, gone: Callable[[Listing], bool]) -> list[tuple[int, int]]:
        """Remove messages from the session's view; their (sequence number, uid), highest first."""
        numbers = [
            (seq, self.messages[seq - 1].uid)
            for seq in range(len(self.messages), 0, -1)
            if gone(self.messages[seq - 1])
        ]
        self.messages = [m for m in self.messages if not gone(m)]
        return numbers

    def copy(self, message: Message) -> defer.Deferred[int]:
        """IMessageCopier, called on the destination mailbox for each message of a COPY."""
        return threads.deferToThread(lambda: self.api.copy(message.listing.id, self.id).uid)

    def copy_to(self, messages: imap4.MessageSet, uid: bool, target: Mailbox) -> defer.Deferred[list[tuple[int, int]]]:
        """COPY: each message's (uid here, uid in the target), for COPYUID (RFC 4315)."""
        found = self.resolve(messages, uid)

        def copied() -> list[tuple[int, int]]:
            with ThreadPoolExecutor(max_workers=DOWNLOADERS) as pool:
                return list(pool.map(lambda pair: (pair[1].uid, self.api.copy(pair[1].id, target.id).uid), found))

        return threads.deferToThread(copied)

    def move(
        self, messages: imap4.MessageSet, uid: bool, target: Mailbox
    ) -> defer.Deferred[tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
        """MOVE: each message's (uid here, uid in the target), and the sequence numbers that left (highest first)."""
        found = self.resolve(messages, uid)

        def moved() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
            with ThreadPoolExecutor(max_workers=DOWNLOADERS) as pool:
                pairs = list(pool.map(lambda pair: (pair[1].uid, self.api.move(pair[1].id, target.id).uid), found))
            ids = {m.id for _, m in found}
            return pairs, self._drop(lambda m: m.id in ids)

        return threads.deferToThread(moved)


# -- messages --------------------------------------------------------------------------------------------------------


@implementer(imap4.IMessage, imap4.IMessageFile)
class Message:
    def __init__(self, mailbox: Mailbox, listing: Listing) -> None:
        self.mailbox = mailbox
        self.listing = listing
        self._part: MimePart | None = None
        self._head: MimePart | None = None

    def raw(self) -> bytes:
        return self.mailbox.raw(self.listing.id)

    def part(self) -> MimePart:
        if self._part is None:
            self._part = MimePart.parse(self.raw())
        return self._part

    def getUID(self) -> int:
        return self.listing.uid

    def getFlags(self) -> list[str]:
        return [flag_of(k) for k in self.listing.keywords]

    def getInternalDate(self) -> str:
        try:
            return format_datetime(datetime.fromisoformat(self.listing.received_at))
        except ValueError:
            return "Thu, 01 Jan 1970 00:00:00 +0000"

    def getSize(self) -> int:
        raw = self.mailbox._raw.get(self.listing.id)
        return len(raw) if raw is not None else self.listing.size

    def open(self) -> BytesIO:
        return BytesIO(self.raw())

    def header_bytes(self, names: list[str] | None, *, negate: bool) -> bytes:
        header = self.listing.head if self.listing.head is not None else split_header(self.raw())[0]
        return header if not names and not negate else header_fields(header, names, negate=negate)

    def getHeaders(self, negate: bool, *names: str | bytes) -> dict[str, str]:
        return self.header_part().getHeaders(negate, *names)

    def header_part(self) -> MimePart:
        """The header alone, parsed: what ENVELOPE and header searches read, without parsing every attachment."""
        if self._part is not None:
            return self._part
        if self._head is None:
            self._head = MimePart.parse(split_header(self.raw())[0])
        return self._head

    def getBodyFile(self) -> BytesIO:
        return BytesIO(split_header(self.raw())[1])

    def isMultipart(self) -> bool:
        return self.part().isMultipart()

    def getSubPart(self, part: int) -> MimePart:
        return self.part().getSubPart(part)


# -- the server ------------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _header_search(name: str) -> Callable[[Any, list[Any], int, Message], bool]:
    def search(_server: Any, query: list[Any], _id: int, msg: Message) -> bool:
        needle = _text(query.pop(0)).lower()
        value = msg.getHeaders(False, name).get(name, "")
        with contextlib.suppress(ValueError, LookupError):  # RFC 2047 words: a client searches for what it shows
            value = str(make_header(decode_header(value)))
        return needle in value.lower()

    return search


def _serial(method: Callable[..., Any]) -> Callable[..., Any]:
    """Hold the client's next command until this one has answered (see ``Server._respond``)."""

    @functools.wraps(method)
    def wrapper(self: Server, tag: bytes, *args: Any, **kwargs: Any) -> Any:
        self._in_flight = tag
        if self.blocked is None:
            self.blocked = []
        if self.mbox is not None:
            self.mbox.want_content = False  # FETCH and SEARCH set it again when their items read the messages
        return method(self, tag, *args, **kwargs)

    return wrapper


class Server(imap4.IMAP4Server):
    idle_poll_seconds = IDLE_CHECK_SECONDS
    mbox: Mailbox | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight: bytes | None = None
        self._idle_loop: task.LoopingCall | None = None
        # RFC 7162: CONDSTORE is on once a client uses it (or ENABLEs it); QRESYNC only through ENABLE.
        self.condstore = False
        self.qresync = False
        self._qresync_select: tuple[int, int, imap4.MessageSet | None] | None = None
        self._search_modseq: bool | None = None  # during a SEARCH with MODSEQ: whether its results are uids

    def capabilities(self) -> dict[bytes, Any]:
        caps = super().capabilities()
        caps[b"MOVE"] = None
        caps[b"ID"] = None
        caps[b"SPECIAL-USE"] = None
        caps[b"UIDPLUS"] = None  # APPENDUID, COPYUID (also in MOVE) and UID EXPUNGE
        caps[b"ENABLE"] = None
        caps[b"CONDSTORE"] = None  # on the store's modseq: a message's moves with each change to it
        caps[b"QRESYNC"] = None
        return caps

    # -- ordering: one command at a time -------------------------------------------------------------------------
    def _respond(self, state: bytes, tag: bytes | None, message: bytes | None) -> None:
        super()._respond(state, tag, message)
        if tag is not None and tag == self._in_flight and state in (b"OK", b"NO", b"BAD"):
            self._in_flight = None
            from twisted.internet import reactor

            reactor.callLater(0, self._resume)  # type: ignore[attr-defined]

    def _resume(self) -> None:
        if self._in_flight is None and self.blocked is not None:
            self._unblock()

    # -- literals: RFC 3501 9: literal = "{" number "}" CRLF *CHAR8, number = 1*DIGIT -----------------------------
    # Twisted reads the size with int(), which takes "-1", and then asked for "-1 octets". Every literal (in the
    # command line or in the rest of it after an earlier literal) passes through these two, so the check is here.
    def _stringLiteral(self, size: int) -> Any:
        _check_literal_size(size)
        return super()._stringLiteral(size)

    def _fileLiteral(self, size: int) -> Any:
        _check_literal_size(size)
        return super()._fileLiteral(size)

    # -- SELECT / EXAMINE: Twisted's, plus UIDNEXT, PERMANENTFLAGS and UNSEEN --------------------------------------
    def _cbSelectWork(self, mbox: Mailbox | None, cmd_name: bytes, tag: bytes) -> None:
        if mbox is None:
            self.sendNegativeResponse(tag, b"No such mailbox")
            return
        mbox.load().addCallback(lambda _: self._selected(mbox, cmd_name, tag)).addErrback(
            self._api_failed, tag, cmd_name
        )

    def _selected(self, mbox: Mailbox, cmd_name: bytes, tag: bytes) -> None:
        flags = " ".join(mbox.message_flags()).encode()
        self.sendUntaggedResponse(b"%d EXISTS" % mbox.getMessageCount())
        self.sendUntaggedResponse(b"0 RECENT")
        self.sendUntaggedResponse(b"FLAGS (" + flags + b")")
        permanent = flags + (b" \\*" if mbox.isWriteable() else b"")
        self.sendPositiveResponse(None, b"[PERMANENTFLAGS (" + permanent + b")] Limited")
        unseen = mbox.first_unseen()
        if unseen is not None:
            self.sendPositiveResponse(None, b"[UNSEEN %d] First unseen" % unseen)
        self.sendPositiveResponse(None, b"[UIDVALIDITY %d] UIDs valid" % mbox.getUIDValidity())
        self.sendPositiveResponse(None, b"[UIDNEXT %d] Predicted next UID" % mbox.getUIDNext())
        self.sendPositiveResponse(None, b"[HIGHESTMODSEQ %d] Highest" % mbox.highest_modseq())
        resync, self._qresync_select = self._qresync_select, None
        if resync is not None and resync[0] == mbox.getUIDValidity():
            # (A new UIDVALIDITY tells the client to start over: nothing to resync from.)
            mbox.vanished_since(resync[1], resync[2]).addCallback(
                lambda vanished: self._resynced(mbox, resync[1], resync[2], vanished, cmd_name, tag)
            ).addErrback(self._api_failed, tag, cmd_name)
            return
        self._opened(mbox, cmd_name, tag)

    def _resynced(
        self, mbox: Mailbox, modseq: int, known: imap4.MessageSet | None, vanished: bytes, cmd_name: bytes, tag: bytes
    ) -> None:
        """RFC 7162 3.2.5: inside SELECT, what changed since the client's modseq: VANISHED (EARLIER) for what left,
        a FETCH with UID, FLAGS and MODSEQ for each message changed or new."""
        if vanished:
            self.sendUntaggedResponse(b"VANISHED (EARLIER) " + vanished)
        for seq, message in enumerate(mbox.messages, 1):
            if message.modseq > modseq and (known is None or message.uid in known):
                self.sendUntaggedResponse(self._flags_fetch(seq, message, with_uid=True))
        self._opened(mbox, cmd_name, tag)

    def _opened(self, mbox: Mailbox, cmd_name: bytes, tag: bytes) -> None:
        mbox.addListener(self)
        mode = b"READ-WRITE" if mbox.isWriteable() else b"READ-ONLY"
        self.mbox = mbox
        self.state = "select"
        self.sendPositiveResponse(tag, b"[" + mode + b"] " + cmd_name + b" completed")

    def _flags_fetch(self, seq: int, message: Listing, *, with_uid: bool) -> bytes:
        """A FETCH response for a message's flags: with its UID when asked (QRESYNC requires it in unsolicited ones)
        and its MODSEQ once CONDSTORE is on."""
        items = [b"FLAGS (" + " ".join(flag_of(k) for k in message.keywords).encode() + b")"]
        if with_uid:
            items.append(b"UID %d" % message.uid)
        if self.condstore:
            items.append(b"MODSEQ (%d)" % message.modseq)
        return b"%d FETCH (%s)" % (seq, b" ".join(items))

    def _api_failed(self, failure: Any, tag: bytes, doing: bytes = b"") -> None:
        error = failure.value
        text = str(error).encode()
        if isinstance(error, imap4.IllegalClientResponse):
            self.sendBadResponse(tag, text)
        elif isinstance(error, (MailApiError, imap4.MailboxException)):
            if text.startswith(b"["):  # a response code (RFC 5530) must open the text
                code, _, rest = text.partition(b"] ")
                self.sendNegativeResponse(tag, code + b"] " + (doing + b" failed: " if doing else b"") + rest)
            else:
                self.sendNegativeResponse(tag, (doing + b" failed: " if doing else b"") + text)
        else:
            self.sendBadResponse(tag, b"Server error")
            failure.printTraceback()

    @_serial
    def _select(self, tag: bytes, name: bytes, params: list[Any] | None, rw: int, cmd_name: bytes) -> None:
        """SELECT/EXAMINE with RFC 7162's parameters: (CONDSTORE), or (QRESYNC (uidvalidity modseq [known-uids]))."""
        self._qresync_select = None
        for i, param in enumerate(params or []):
            word = param.upper() if isinstance(param, bytes) else b""
            if word == b"CONDSTORE":
                self.condstore = True
            elif word == b"QRESYNC":
                if not self.qresync:
                    self.sendBadResponse(tag, b"QRESYNC must be ENABLEd first")
                    return
                given = (params or [])[i + 1] if i + 1 < len(params or []) else None
                try:
                    validity, modseq = int(given[0]), int(given[1])
                    known = imap4.parseIdList(given[2]) if len(given) > 2 and isinstance(given[2], bytes) else None
                except (TypeError, ValueError, IndexError, imap4.IllegalIdentifierError):
                    self.sendBadResponse(tag, b"QRESYNC takes (uidvalidity modseq [known-uids])")
                    return
                self._qresync_select = (validity, modseq, known)
        if self.mbox is not None:
            # RFC 7162 3.2.11: the client learns where the old mailbox's responses end and the new one's begin.
            self.sendPositiveResponse(None, b"[CLOSED] Previous mailbox closed")
        imap4.IMAP4Server._selectWork(self, tag, name, rw, cmd_name)

    def opt_select_params(self, line: bytes) -> tuple[list[Any] | None, bytes]:
        line = line.strip()
        if not line:
            return None, b""
        try:
            parsed = imap4.parseNestedParens(line)
        except (ValueError, imap4.MismatchedNesting) as error:
            raise imap4.IllegalClientResponse(f"malformed SELECT parameters: {error}") from None
        if len(parsed) != 1 or not isinstance(parsed[0], list):
            raise imap4.IllegalClientResponse("SELECT parameters go in one parenthesised list")
        return parsed[0], b""

    # -- FETCH: download what the items need first; a non-PEEK body fetch sets \Seen ----------------------------
    def arg_fetch_request(self, line: bytes) -> tuple[FetchRequest, bytes]:
        """fetch-att plus RFC 7162's MODSEQ item and (CHANGEDSINCE n [VANISHED]) modifier, which Twisted's parser does
        not know: both are taken off the line first, and the rest is Twisted's."""
        request = FetchRequest()
        modifiers = _FETCH_MODIFIERS.search(line)
        if modifiers is not None:
            words = modifiers.group(1).upper().split()
            for i, word in enumerate(words):
                if word == b"CHANGEDSINCE":
                    request.changed_since = int(words[i + 1])
                elif word == b"VANISHED":
                    request.vanished = True
            line = line[: modifiers.start()]
        line, found = _MODSEQ_ITEM.subn(b"", line)
        request.modseq = bool(found) or request.changed_since is not None  # RFC 7162 3.1.4.1: implied by it
        line = re.sub(rb"\(\s*\)|\s+(?=\))|(?<=\()\s+", b"", line).strip()  # what taking MODSEQ out left
        if line:
            request.query = imap4.IMAP4Server.arg_fetchatt(self, line)[0]
        return request, b""

    @_serial
    def do_FETCH(self, tag: bytes, messages: imap4.MessageSet, request: FetchRequest, uid: int = 0) -> None:
        assert self.mbox is not None
        query = list(request.query)
        if request.modseq:
            self.condstore = True
            query.append(_ModseqItem())
        if request.vanished and not (uid and self.qresync and request.changed_since is not None):
            self.sendBadResponse(tag, b"VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled")
            return
        if request.changed_since is not None:
            since = request.changed_since
            if request.vanished:
                self.mbox.vanished_since(since, messages).addCallback(
                    lambda vanished: self._fetch_changed(tag, messages, query, uid, since, vanished)
                ).addErrback(self._api_failed, tag, b"FETCH")
                return
            self._fetch_changed(tag, messages, query, uid, since, b"")
            return
        self._fetch(tag, messages, query, uid)

    def _fetch_changed(
        self, tag: bytes, messages: imap4.MessageSet, query: list[Any], uid: int, since: int, vanished: bytes
    ) -> None:
        """FETCH (CHANGEDSINCE n): only the messages whose modseq is above n, after any VANISHED (EARLIER)."""
        assert self.mbox is not None
        if vanished:
            self.sendUntaggedResponse(b"VANISHED (EARLIER) " + vanished)
        changed = [(seq, m) for seq, m in self.mbox.resolve(messages, bool(uid)) if m.modseq > since]
        if not changed:
            self.sendPositiveResponse(tag, b"FETCH completed")
            return
        narrowed = imap4.MessageSet()
        for seq, m in changed:
            narrowed.add(m.uid if uid else seq)
        self._fetch(tag, narrowed, query, uid)

    def spew_modseq(self, id: int, msg: Message, _w: Any = None, _f: Any = None) -> None:
        (_w or self.transport.write)(b"MODSEQ (%d)" % msg.listing.modseq)

    def _fetch(self, tag: bytes, messages: imap4.MessageSet, query: list[Any], uid: int) -> None:
        assert self.mbox is not None
        self.mbox.want_content = any(part.type not in _LISTING_ITEMS and not _is_head(part) for part in query)
        if not self.mbox.want_content and any(_is_head(part) for part in query):
            # A message list's header FETCH is answered from the listing's header blocks; a message without one
            # (over 16 KB of header, or filed before listings carried them) is downloaded as before.
            self.mbox.want_content = any(m.head is None for _, m in self.mbox.resolve(messages, bool(uid)))
        sets_seen = any(
            (part.type == "body" and not part.peek and not _is_structure(part)) or part.type in ("rfc822", "rfc822text")
            for part in query
        )
        if not sets_seen:
            super().do_FETCH(tag, messages, query, uid=uid)
            return
        # RFC 3501 6.4.5: BODY[...] without .PEEK sets \Seen. Set it first, so the FLAGS items answered show it.
        mbox = self.mbox
        mbox.fetch(messages, bool(uid)).addCallback(mbox.mark_seen).addCallbacks(
            lambda _: imap4.IMAP4Server.do_FETCH(self, tag, messages, query, uid=uid),
            lambda failure: self._api_failed(failure, tag, b"FETCH"),
        )

    def spew_body(self, part: Any, id: int, msg: Any, _w: Any = None, _f: Any = None) -> Any:
        # The top-level header as received, folding and repeated fields intact (Twisted rebuilds it from a dict).
        if part.header and not part.part and isinstance(msg, Message):
            names = [n.decode() if isinstance(n, bytes) else n for n in part.header.fields or []]
            data = msg.header_bytes(names, negate=bool(part.header.negate and names))
            (_w or self.transport.write)(part.__bytes__() + b" " + imap4._literal(data))
            return None
        return super().spew_body(part, id, msg, _w, _f)

    # -- SEARCH: Twisted's, with the messages downloaded first when the keys read them --------------------------
    def arg_searchkeys(self, line: bytes) -> tuple[list[Any], bytes] | defer.Deferred[tuple[list[Any], bytes]]:
        """The search keys, with every literal the command announces read first.

        A line ending in ``{n}`` continues with n octets and then the rest of the command (RFC 3501 4.3); clients
        send any non-ASCII string that way (``SEARCH CHARSET UTF-8 SUBJECT {6}``). Twisted's parser takes the line
        at once: the search ran without its string and the octets came in as a command of their own ("BAD Missing
        command"). Here each literal is awaited like any other argument's, then put back inline in the form
        ``parseNestedParens`` reads (``{n}`` CRLF octets), so one parser sees the whole command.
        """
        return self._search_keys(b"", line)

    def _search_keys(
        self, head: bytes, line: bytes
    ) -> tuple[list[Any], bytes] | defer.Deferred[tuple[list[Any], bytes]]:
        announced = _TRAILING_LITERAL.search(line)
        if announced is None:
            try:
                # In parentheses: the parser strips the outer whitespace, which would cut a final literal's octets.
                return imap4.parseNestedParens(b"(" + head + line + b")")[0], b""
            except (ValueError, imap4.MismatchedNesting) as error:
                raise imap4.IllegalClientResponse(f"malformed search keys: {error}") from None
        size = int(announced.group(1))
        head += line[: announced.start()] + b"{%d}\r\n" % size
        if len(head) + size > MAX_SEARCH_BYTES:
            raise imap4.IllegalClientResponse(f"search keys longer than {MAX_SEARCH_BYTES} octets")
        literal: defer.Deferred[tuple[bytes, bytes]] = self._stringLiteral(size)
        return literal.addCallback(lambda read: self._search_keys(head + read[0], read[1]))

    @_serial
    def do_SEARCH(self, tag: bytes, charset: Any, query: list[Any], uid: int = 0) -> None:
        assert self.mbox is not None
        if charset is not None and _text(charset).strip('"').upper() not in SEARCH_CHARSETS:
            # RFC 3501 6.4.4: an unsupported charset is refused, not guessed (a wrong guess finds nothing).
            supported = " ".join(SEARCH_CHARSETS).encode()
            self.sendNegativeResponse(tag, b"[BADCHARSET (" + supported + b")] unsupported charset")
            return
        atoms = set(_atoms(query))
        self.mbox.want_content = bool(_CONTENT_SEARCH & atoms)
        if b"MODSEQ" in atoms:
            self.condstore = True
            self._search_modseq = bool(uid)
        super().do_SEARCH(tag, charset, query, uid=uid)

    # Twisted compares the client's search strings (bytes) with header strings, which fails on Python 3, and never
    # matches KEYWORD; these replace its content and keyword search steps.
    search_SUBJECT = _header_search("subject")
    search_FROM = _header_search("from")
    search_TO = _header_search("to")
    search_CC = _header_search("cc")
    search_BCC = _header_search("bcc")

    def search_HEADER(self, query: list[Any], _id: int, msg: Message) -> bool:
        name = _text(query.pop(0)).lower()
        return _header_search(name)(self, query, _id, msg)

    def search_BODY(self, query: list[Any], _id: int, msg: Message) -> bool:
        return _text(query.pop(0)).lower().encode() in msg.getBodyFile().read().lower()

    def search_TEXT(self, query: list[Any], _id: int, msg: Message) -> bool:
        return _text(query.pop(0)).lower().encode() in msg.raw().lower()

    def search_MODSEQ(self, query: list[Any], _id: int, msg: Message) -> bool:
        """RFC 7162 3.1.5: MODSEQ [entry-name entry-type] n, messages whose modseq is at least n. Entries name one
        flag's own modseq; the store keeps one per message, which is never below a flag's, so that one is used."""
        value = query.pop(0)
        if not _text(value).isdigit():  # an entry name: its type follows, then the number
            query.pop(0)
            value = query.pop(0)
        return msg.listing.modseq >= int(_text(value))

    def sendUntaggedResponse(self, message: bytes, isAsync: Any = None) -> None:
        # A SEARCH with MODSEQ answers with the highest modseq among the messages found (RFC 7162 3.1.5); Twisted
        # writes the SEARCH response itself, so it is completed here on its way out.
        if self._search_modseq is not None and message.startswith(b"SEARCH") and self.mbox is not None:
            ids = {int(n) for n in message.split()[1:]}
            uid = self._search_modseq
            found = [m.modseq for seq, m in enumerate(self.mbox.messages, 1) if (m.uid if uid else seq) in ids]
            if found:
                message += b" (MODSEQ %d)" % max(found)
            self._search_modseq = None
        super().sendUntaggedResponse(message, isAsync)

    def search_KEYWORD(self, query: list[Any], _id: int, msg: Message) -> bool:
        return keyword_of(_text(query.pop(0))) in msg.listing.keywords

    def search_UNKEYWORD(self, query: list[Any], _id: int, msg: Message) -> bool:
        return not self.search_KEYWORD(query, _id, msg)

    def do_ID(self, tag: bytes, _line: bytes) -> None:
        # RFC 2971: Apple Mail and iOS send ID right after connecting; answering keeps them from logging a BAD.
        self.sendUntaggedResponse(b'ID ("name" "Postroom bridge")')
        self.sendPositiveResponse(tag, b"ID completed")

    @_serial
    def do_APPEND(self, tag: bytes, mailbox: bytes, flags: list[Any] | None, date: Any, message: Any) -> None:
        """A sent copy, a draft or an import, stored through the API; answered with APPENDUID (RFC 4315). When the
        target is the selected mailbox, the new message is announced (EXISTS) before the tagged answer."""
        name = imap4._parseMbox(mailbox)
        flag_names = [_text(flag) for flag in flags or []]
        when = _text(date) if date is not None else None

        def with_target(target: Mailbox | None) -> Any:
            if target is None:
                self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
                return None
            return target.addMessage(message, flag_names, when).addCallback(appended, target)

        def appended(uid: int, target: Mailbox) -> Any:
            answer = b"[APPENDUID %d %d] APPEND completed" % (target.getUIDValidity(), uid)
            if self.mbox is not None and self.mbox.id == target.id:
                return (
                    self.mbox.sync()
                    .addCallback(self._announce)
                    .addCallback(lambda _: self.sendPositiveResponse(tag, answer))
                )
            self.sendPositiveResponse(tag, answer)
            return None

        defer.maybeDeferred(self.account.select, name).addCallback(with_target).addErrback(
            self._api_failed, tag, b"APPEND"
        )

    @_serial
    def do_COPY(self, tag: bytes, messages: imap4.MessageSet, mailbox: bytes, uid: int = 0) -> None:
        """Copies through the API, answered with COPYUID (RFC 4315): clients find their copies without a search."""
        assert self.mbox is not None
        source = self.mbox
        name = imap4._parseMbox(mailbox)

        def with_target(target: Mailbox | None) -> Any:
            if target is None:
                self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
                return None
            return source.copy_to(messages, bool(uid), target).addCallback(copied, target)

        def copied(pairs: list[tuple[int, int]], target: Mailbox) -> None:
            code = _copyuid(target, pairs) + b" " if pairs else b""
            self.sendPositiveResponse(tag, code + b"COPY completed")

        defer.maybeDeferred(self.account.select, name).addCallback(with_target).addErrback(
            self._api_failed, tag, b"COPY"
        )

    def do_ENABLE(self, tag: bytes, line: bytes) -> None:
        """RFC 5161: ENABLED names what this command turned on; unknown names are ignored, as the RFC asks."""
        enabled = []
        for name in line.upper().split():
            if name == b"QRESYNC" and not self.qresync:
                self.qresync = self.condstore = True  # RFC 7162 3.2.3: QRESYNC implies CONDSTORE
                enabled.append(name)
            elif name == b"CONDSTORE" and not self.condstore:
                self.condstore = True
                enabled.append(name)
        self.sendUntaggedResponse(b" ".join([b"ENABLED", *enabled]))
        self.sendPositiveResponse(tag, b"ENABLE completed")

    def opt_store_modifier(self, line: bytes) -> tuple[int | None, bytes]:
        found = _STORE_MODIFIER.match(line)
        if found is None:
            return None, line
        return int(found.group(1)), line[found.end() :]

    @_serial
    def do_STORE(
        self,
        tag: bytes,
        messages: imap4.MessageSet,
        unchanged_since: int | None,
        mode: bytes,
        flags: list[Any],
        uid: int = 0,
    ) -> None:
        """STORE, conditional with (UNCHANGEDSINCE n) (RFC 7162 3.1.3): messages changed since are left alone and
        named in the MODIFIED response code."""
        assert self.mbox is not None
        mbox = self.mbox
        name = mode.upper()
        silent = name.endswith(b".SILENT")
        how = 1 if name.startswith(b"+") else -1 if name.startswith(b"-") else 0
        if unchanged_since is not None:
            self.condstore = True

        def stored(result: tuple[dict[int, Listing], list[int]]) -> None:
            updated, failed = result
            for seq, message in sorted(updated.items()):
                if not silent:
                    self.sendUntaggedResponse(self._flags_fetch(seq, message, with_uid=bool(uid) or self.qresync))
                elif self.condstore:  # 3.1.3: the new MODSEQ is told even to a .SILENT store
                    with_uid = b" UID %d" % message.uid if uid or self.qresync else b""
                    self.sendUntaggedResponse(b"%d FETCH (MODSEQ (%d)%s)" % (seq, message.modseq, with_uid))
            if failed:
                named = sorted(mbox.messages[seq - 1].uid if uid else seq for seq in failed)
                self.sendPositiveResponse(tag, b"[MODIFIED " + _id_set(named) + b"] Conditional STORE failed")
            else:
                self.sendPositiveResponse(tag, b"STORE completed")

        flag_names = [_text(flag) for flag in flags]
        mbox.store_flags(messages, flag_names, how, bool(uid), unchanged_since).addCallbacks(
            stored, self._api_failed, errbackArgs=(tag, b"STORE")
        )

    # -- the rest that calls the API ----------------------------------------------------------------------------
    do_STATUS = _serial(imap4.IMAP4Server.do_STATUS)
    do_CLOSE = _serial(imap4.IMAP4Server.do_CLOSE)
    _listWork = _serial(imap4.IMAP4Server._listWork)

    @_serial
    def do_EXPUNGE(self, tag: bytes) -> None:
        assert self.mbox is not None
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"EXPUNGE ignored on read-only mailbox")
            return
        self.mbox.expunge().addCallbacks(
            lambda gone: self._expunged(gone, tag, b"EXPUNGE"), self._api_failed, errbackArgs=(tag, b"EXPUNGE")
        )

    def _expunged(self, gone: list[tuple[int, int]], tag: bytes, what: bytes) -> None:
        self._tell_expunged(gone)
        self.sendPositiveResponse(tag, what + b" completed")

    def _tell_expunged(self, gone: list[tuple[int, int]]) -> None:
        """EXPUNGE per sequence number, highest first; under QRESYNC one VANISHED with the uids (RFC 7162 3.2.10)."""
        if self.qresync:
            if gone:
                self.sendUntaggedResponse(b"VANISHED " + _id_set(sorted(uid for _, uid in gone)))
            return
        for seq, _uid in gone:
            self.sendUntaggedResponse(b"%d EXPUNGE" % seq)

    @_serial
    def do_MOVE(self, tag: bytes, messages: imap4.MessageSet, mailbox: bytes, uid: int = 0) -> None:
        """RFC 6851: to the target, then EXPUNGE responses for the messages that left."""
        assert self.mbox is not None
        source = self.mbox
        if not source.isWriteable():
            self.sendNegativeResponse(tag, b"MOVE from a read-only mailbox")
            return
        name = imap4._parseMbox(mailbox)

        def with_target(target: Mailbox | None) -> Any:
            if target is None:
                self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
                return None
            return source.move(messages, bool(uid), target).addCallback(moved, target)

        def moved(result: tuple[list[tuple[int, int]], list[tuple[int, int]]], target: Mailbox) -> None:
            pairs, gone = result
            if pairs:  # RFC 6851 4.3: with UIDPLUS, COPYUID comes in an untagged OK before the EXPUNGEs
                self.sendPositiveResponse(None, _copyuid(target, pairs) + b" Moved")
            self._expunged(gone, tag, b"MOVE")

        defer.maybeDeferred(self.account.select, name).addCallback(with_target).addErrback(
            self._api_failed, tag, b"MOVE"
        )

    def do_UID(self, tag: bytes, command: bytes, line: bytes) -> None:
        command = command.upper()
        if command == b"MOVE":
            self.dispatchCommand(tag, command, line, uid=1)
        elif command == b"EXPUNGE":
            self._uid_expunge(tag, line)
        else:
            super().do_UID(tag, command, line)

    @_serial
    def _uid_expunge(self, tag: bytes, line: bytes) -> None:
        """UID EXPUNGE (RFC 4315): only the named messages, for clients that must not expunge others' deletions."""
        assert self.mbox is not None
        messages = imap4.parseIdList(line.strip())
        self.mbox.expunge_uids(messages).addCallbacks(
            lambda gone: self._expunged(gone, tag, b"UID EXPUNGE"), self._api_failed, errbackArgs=(tag, b"EXPUNGE")
        )

    # -- changes made elsewhere: NOOP, CHECK and IDLE announce them ---------------------------------------------
    @_serial
    def do_NOOP(self, tag: bytes) -> None:
        if self.mbox is None:
            self.sendPositiveResponse(tag, b"NOOP completed")
            return
        self.mbox.sync().addCallbacks(self._announce, self._api_failed, errbackArgs=(tag, b"NOOP")).addCallback(
            lambda done: done and self.sendPositiveResponse(tag, b"NOOP completed")
        )

    do_CHECK = do_NOOP

    def _announce(self, changes: Changes) -> bool:
        self._tell_expunged(changes.expunged)
        if changes.exists is not None:
            self.sendUntaggedResponse(b"%d EXISTS" % changes.exists)
        for seq, message in sorted(changes.flags.items()):
            self.sendUntaggedResponse(self._flags_fetch(seq, message, with_uid=self.qresync))
        return True

    def do_IDLE(self, tag: bytes) -> None:
        super().do_IDLE(tag)
        if self.mbox is not None:
            self._idle_loop = task.LoopingCall(self._idle_poll)
            self._idle_loop.start(self.idle_poll_seconds, now=False)

    def _idle_poll(self) -> defer.Deferred[Any] | None:
        if self.mbox is None:
            return None
        return self.mbox.sync().addCallbacks(self._announce, lambda failure: None)

    def parse_idle(self, *args: Any) -> None:
        if self._idle_loop is not None and self._idle_loop.running:
            self._idle_loop.stop()
        self._idle_loop = None
        super().parse_idle(*args)

    def connectionLost(self, reason: Any) -> None:
        if self._idle_loop is not None and self._idle_loop.running:
            self._idle_loop.stop()
        super().connectionLost(reason)

    # Twisted finds a command's handler through per-state tables built from the base class's functions.
    select_FETCH = (do_FETCH, imap4.IMAP4Server.arg_seqset, arg_fetch_request)
    select_SEARCH = (do_SEARCH, imap4.IMAP4Server.opt_charset, arg_searchkeys)
    select_STORE = (
        do_STORE,
        imap4.IMAP4Server.arg_seqset,
        opt_store_modifier,
        imap4.IMAP4Server.arg_atom,
        imap4.IMAP4Server.arg_flaglist,
    )
    select_COPY = (do_COPY, imap4.IMAP4Server.arg_seqset, imap4.IMAP4Server.arg_finalastring)
    select_MOVE = (do_MOVE, imap4.IMAP4Server.arg_seqset, imap4.IMAP4Server.arg_finalastring)
    auth_STATUS = select_STATUS = (do_STATUS, imap4.IMAP4Server.arg_astring, imap4.IMAP4Server.arg_plist)
    select_CLOSE = (do_CLOSE,)
    select_EXPUNGE = (do_EXPUNGE,)
    unauth_NOOP = auth_NOOP = select_NOOP = logout_NOOP = (do_NOOP,)
    select_CHECK = (do_CHECK,)
    select_IDLE = auth_IDLE = (do_IDLE,)
    auth_APPEND = select_APPEND = (
        do_APPEND,
        imap4.IMAP4Server.arg_astring,
        imap4.IMAP4Server.opt_plist,
        imap4.IMAP4Server.opt_datetime,
        imap4.IMAP4Server.arg_literal,
    )
    unauth_ID = auth_ID = select_ID = (do_ID, imap4.IMAP4Server.arg_line)
    auth_ENABLE = select_ENABLE = (do_ENABLE, imap4.IMAP4Server.arg_line)
    select_UID = (do_UID, imap4.IMAP4Server.arg_atom, imap4.IMAP4Server.arg_line)
    auth_SELECT = select_SELECT = (_select, imap4.IMAP4Server.arg_astring, opt_select_params, 1, b"SELECT")
    auth_EXAMINE = select_EXAMINE = (_select, imap4.IMAP4Server.arg_astring, opt_select_params, 0, b"EXAMINE")
    auth_LIST = select_LIST = (_listWork, imap4.IMAP4Server.arg_astring, imap4.IMAP4Server.arg_astring, 0, b"LIST")
    auth_LSUB = select_LSUB = (_listWork, imap4.IMAP4Server.arg_astring, imap4.IMAP4Server.arg_astring, 1, b"LSUB")


@dataclass
class FetchRequest:
    """A FETCH's items as Twisted parsed them, and what RFC 7162 adds."""

    query: list[Any] = field(default_factory=list)
    modseq: bool = False  # the MODSEQ item (asked for, or implied by CHANGEDSINCE)
    changed_since: int | None = None
    vanished: bool = False


class _ModseqItem:
    """The MODSEQ fetch item among Twisted's parsed ones: spewMessage calls ``spew_<type>``."""

    type = "modseq"


def _id_set(numbers: list[int]) -> bytes:
    """Ascending numbers as an IMAP sequence set, runs collapsed: 1,2,3,7 -> 1:3,7."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}:{b}" for a, b in runs).encode()


def _vanished(requested: imap4.MessageSet, present: list[int], ceiling: int) -> bytes:
    """The uids of a requested set (``*`` meaning ``ceiling``) that are not in the mailbox, as a sequence set."""
    here = sorted(present)
    runs: list[tuple[int, int]] = []
    for low, high in requested.ranges:
        low = max(1, low)
        high = ceiling if high is None else min(high, ceiling)
        if low > high:
            continue
        start = low
        for uid in here[bisect.bisect_left(here, low) : bisect.bisect_right(here, high)]:
            if uid > start:
                runs.append((start, uid - 1))
            start = uid + 1
        if start <= high:
            runs.append((start, high))
    runs.sort()
    return ",".join(f"{a}" if a == b else f"{a}:{b}" for a, b in runs).encode()


def _copyuid(target: Mailbox, pairs: list[tuple[int, int]]) -> bytes:
    """The COPYUID response code (RFC 4315 3): the target's UIDVALIDITY, the source uids and their new ones."""
    source = ",".join(str(old) for old, _ in pairs).encode()
    copies = ",".join(str(new) for _, new in pairs).encode()
    return b"[COPYUID %d %s %s]" % (target.getUIDValidity(), source, copies)


def _internal_date(value: str | None) -> datetime | None:
    """An APPEND date-time (RFC 3501: "02-Dec-2026 14:05:09 +0000", the day possibly space-padded)."""
    if value is None:
        return None
    return datetime.strptime(value.strip().strip('"').strip(), "%d-%b-%Y %H:%M:%S %z")


def _check_literal_size(size: int) -> None:
    if size < 0:
        # Answered "<tag> BAD Illegal syntax: ..." by Twisted's dispatch; the session goes on.
        raise imap4.IllegalClientResponse("a literal's size is a number of octets, {0} or more")


def _is_head(part: Any) -> bool:
    """BODY[HEADER], BODY[HEADER.FIELDS (...)] or .NOT of the message itself: what the listing's header block holds."""
    return part.type == "body" and bool(part.header) and not part.part


def _is_structure(part: Any) -> bool:
    """BODY with no section is BODYSTRUCTURE's short form: it reads nothing and sets nothing."""
    return not (part.header or part.text or part.mime or part.empty or part.part)


def _atoms(query: Any) -> Iterable[bytes]:
    if isinstance(query, bytes):
        yield query.upper()
    elif isinstance(query, (list, tuple)):
        for item in query:
            yield from _atoms(item)


class ServerFactory(Factory):
    def __init__(
        self,
        client: PostroomClient,
        *,
        idle_poll_seconds: float = IDLE_CHECK_SECONDS,
        tls: Any = None,
        failures: RateLimiter | None = None,  # shared with the bridge's other listeners
    ) -> None:
        self.portal = api_portal(client, imap4.IAccount, Account)
        self.failures = failures if failures is not None else RateLimiter(FAILED_LOGINS_ALLOWED, FAILED_LOGIN_WINDOW)
        self.idle_poll_seconds = idle_poll_seconds
        self.tls = tls

    def buildProtocol(self, addr: Any) -> Server:
        server = Server(
            chal={b"PLAIN": imap4.PLAINCredentials, b"LOGIN": imap4.LOGINCredentials}, contextFactory=self.tls
        )
        server.portal = GuardedPortal(self.portal, self.failures, getattr(addr, "host", "?"))
        server.idle_poll_seconds = self.idle_poll_seconds
        server.factory = self
        return server
