"""The mailbox HTTP API as the IMAP and POP3 listeners need it: blocking calls, one client key each.

Everything a mail client does goes back through the API (flags, moves, copies, expunges), so the bridge holds no mail
state of its own beyond what a session has listed, the last listing of each mailbox (reused while the mailbox's state
is unchanged) and the received messages it keeps on disk (``cache.py``: their bytes never change), and the API's
scopes decide what a key may do. Calls go over kept-alive connections (``connections.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from http.client import HTTPException
from pathlib import Path
from typing import Any

from postroom.protocols.bridge.cache import RawCache
from postroom.protocols.bridge.connections import Connections, Response
from postroom.protocols.submission.api_client import ApiAnswer, PostroomClient

PAGE = 200  # the API's largest page
URL_MARGIN_SECONDS = 30.0  # a listed download URL is used only while it has this long left
MAX_LISTINGS = 64  # mailboxes whose last listing is kept (a user has a few)


class MailApiError(Exception):
    """The API refused or could not be reached; ``status`` 0 means unreachable."""

    def __init__(self, answer: ApiAnswer, doing: str) -> None:
        self.status = answer.status
        self.code = answer.error_code
        super().__init__(f"{doing}: {answer.error_message or answer.error_code or f'HTTP {answer.status}'}")


@dataclass
class Listing:
    """One message as a mailbox listing returns it: what IMAP needs before it reads any content."""

    id: str
    uid: int
    keywords: list[str]
    size: int
    received_at: str
    modseq: int = 0  # moves with every change to the message (RFC 7162 MODSEQ)
    head: bytes | None = None  # the header block as received, when the listing carries it

    @classmethod
    def of(cls, item: dict[str, Any]) -> Listing:
        return cls(
            id=str(item["id"]),
            uid=int(item.get("uid") or 0),
            keywords=list(item.get("keywords") or []),
            size=int(item.get("size") or 0),
            received_at=str(item.get("received_at") or ""),
            modseq=int(item.get("modseq") or 0),
            head=base64.b64decode(item["head"]) if item.get("head") else None,
        )


class Listings:
    """The last listing of each mailbox, per API key, with the mailbox state it was read at. Every change to a mailbox
    (filing, flags, moves, copies, expunges, bulk loads) advances its state, so while the state is the same the
    listing is too, and a client's next SELECT needs no pages. In memory only: a few entries, gone with the bridge."""

    def __init__(self, max_entries: int = MAX_LISTINGS) -> None:
        self.max_entries = max_entries
        self._kept: OrderedDict[tuple[str, str], tuple[int, list[Listing]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, box_id: str, state: int) -> list[Listing] | None:
        with self._lock:
            kept = self._kept.get((_digest(key), box_id))
            if kept is None or kept[0] != state:
                return None
            self._kept.move_to_end((_digest(key), box_id))
        return _copies(kept[1])  # sessions change a listing's keywords in place

    def put(self, key: str, box_id: str, state: int, messages: list[Listing]) -> None:
        with self._lock:
            self._kept[(_digest(key), box_id)] = (state, _copies(messages))
            self._kept.move_to_end((_digest(key), box_id))
            while len(self._kept) > self.max_entries:
                self._kept.popitem(last=False)


class BridgeClient(PostroomClient):
    """The API endpoint as the mailbox listeners reach it, shared by every session: one pool of kept-alive
    connections, the last listing of each mailbox, and the received messages kept on disk (``raw_cache``; None keeps
    nothing)."""

    def __init__(self, base_url: str, *, raw_cache: RawCache | None = None, timeout: float = 30.0) -> None:
        super().__init__(base_url, timeout=timeout)
        self.connections = Connections(timeout=timeout)
        self.listings = Listings()
        self.raw_cache = raw_cache

    @classmethod
    def for_state_dir(cls, base_url: str, state_dir: Path, cache_bytes: int) -> BridgeClient:
        cache = RawCache(state_dir / "mail", max_bytes=cache_bytes) if cache_bytes > 0 else None
        return cls(base_url, raw_cache=cache)

    def close(self) -> None:
        self.connections.close()


_REDIRECTS = (301, 302, 303, 307, 308)


class MailApi:
    def __init__(self, client: PostroomClient, key: str) -> None:
        self.client = client
        self.key = key
        self.listings: Listings | None = None
        self._urls: dict[str, tuple[str, float]] = {}  # mail id -> presigned raw URL from a listing, usable until
        if isinstance(client, BridgeClient):
            self.connections, self.cache, self.listings = client.connections, client.raw_cache, client.listings
        else:  # a plain client: no connection outlives a call, nothing is kept
            self.connections, self.cache = Connections(timeout=client.timeout, max_idle_per_host=0), None

    def _send(self, doing: str, method: str, url: str, **kwargs: Any) -> Response:
        try:
            return self.connections.request(method, url, **kwargs)
        except (OSError, HTTPException) as error:
            message = f"Postroom API unreachable: {error or type(error).__name__}"
            raise MailApiError(ApiAnswer(0, {"error": {"code": "unreachable", "message": message}}), doing) from None

    def _call(
        self, doing: str, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        url = self.client.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        response = self._send(doing, method, url, headers=headers, body=data)
        answer = ApiAnswer(response.status, _json(response.body))
        if not 200 <= answer.status < 300:
            raise MailApiError(answer, doing)
        return answer.body

    def mailboxes(self, address: str) -> list[dict[str, Any]]:
        return list(self._call("list mailboxes", "GET", "/v1/mailboxes", query=[("address", address)])["mailboxes"])

    def mailbox(self, box_id: str) -> dict[str, Any]:
        return self._call("read mailbox", "GET", f"/v1/mailboxes/{_quote(box_id)}")

    def create_mailbox(self, address: str, name: str) -> dict[str, Any]:
        return self._call("create mailbox", "POST", "/v1/mailboxes", {"address": address, "name": name})

    def delete_mailbox(self, box_id: str) -> None:
        self._call("delete mailbox", "DELETE", f"/v1/mailboxes/{_quote(box_id)}")

    def listing(self, box_id: str, box: dict[str, Any] | None = None) -> tuple[int, list[Listing]]:
        """Every message of the mailbox, oldest uid first, and the state the listing is at least as new as. ``box``:
        the mailbox as the caller has just read it (it must be read before the pages; it is read here if not given)."""
        box = box or self.mailbox(box_id)  # first: its state is then no newer than what the pages show
        state = int(box["state"])
        if self.listings is not None:
            kept = self.listings.get(self.key, box_id, state)
            if kept is not None:
                return state, kept
        found: dict[str, Listing] = {}
        cursor: str | None = None
        while True:
            # raw_urls: each page carries the messages' presigned download URLs, so reading them after a fresh
            # listing costs S3 downloads only, not one API call per message first.
            # headers: each message's header block, so a message list's header FETCH needs no download at all.
            query = [("limit", str(PAGE)), ("raw_urls", "true"), ("headers", "true")]
            query += [("cursor", cursor)] if cursor else []
            asked = time.monotonic()
            page = self._call("list messages", "GET", f"/v1/mailboxes/{_quote(box_id)}/messages", query=query)
            usable_until = asked + float(page.get("raw_urls_expire_in") or 0) - URL_MARGIN_SECONDS
            for item in page["messages"]:
                found[item["id"]] = Listing.of(item)
                if item.get("raw_url"):
                    self._urls[item["id"]] = (str(item["raw_url"]), usable_until)
            cursor = page.get("next_cursor")
            if not cursor:
                break
        messages = sorted(found.values(), key=lambda m: m.uid)
        if self.listings is not None:
            self.listings.put(self.key, box_id, state, messages)
        return state, messages

    def raw(self, mail_id: str) -> bytes:
        """The message as received: from the disk cache, or the API's presigned URL, fetched without the key."""
        if self.cache is not None:
            cached = self.cache.get(self._cached_as(mail_id))
            if cached is not None:
                return cached
        doing = f"read {mail_id}"
        url, usable_until = self._urls.pop(mail_id, ("", 0.0))
        if url and time.monotonic() < usable_until:
            download = self._send(doing, "GET", url)
            if download.status == 200:
                return self._keep(mail_id, download.body)
            # Expired early, or the message moved on (an expunge removes the object): ask the API as below.
        url = self.client.base_url + f"/v1/mail/{_quote(mail_id)}/raw"
        answer = self._send(doing, "GET", url, headers={"Authorization": f"Bearer {self.key}"})
        # The route redirects to S3. Not followed with the request's headers: the key has no business leaving for
        # another host (and S3 refuses a second credential).
        if answer.status in _REDIRECTS:
            location = answer.headers.get("location")
        elif 200 <= answer.status < 300:
            location = _json(answer.body).get("url")
        else:
            raise MailApiError(ApiAnswer(answer.status, _json(answer.body)), doing)
        if not location or not str(location).startswith(("http://", "https://")):
            raise MailApiError(ApiAnswer(502, {}), f"{doing}: no download URL")
        download = self._send(doing, "GET", str(location))
        if download.status != 200:
            raise MailApiError(ApiAnswer(download.status, {}), f"{doing}: download failed")
        return self._keep(mail_id, download.body)

    def _keep(self, mail_id: str, raw: bytes) -> bytes:
        if self.cache is not None:
            self.cache.put(self._cached_as(mail_id), raw)
        return raw

    def _cached_as(self, mail_id: str) -> str:
        # Ids are unique within one deployment; a bridge pointed at another one (staging, a local stack) keeps apart.
        return f"{self.client.base_url} {mail_id}"

    def set_keywords(self, mail_id: str, changes: dict[str, bool], unchanged_since: int | None = None) -> Listing:
        """Set and clear keywords; with ``unchanged_since`` only if the message's modseq is at most that (a
        MailApiError with status 412 otherwise)."""
        body: dict[str, Any] = {"keywords": changes}
        if unchanged_since is not None:
            body["unchanged_since"] = str(unchanged_since)
        return Listing.of(self._call("set flags", "PATCH", f"/v1/mail/{_quote(mail_id)}", body))

    def changes(self, box_id: str, since: int) -> dict[str, Any] | None:
        """What changed in a mailbox since a state (created, updated, destroyed ids); None when the store can no
        longer say (the state is older than the change log)."""
        query = [("since", str(since)), ("limit", "1000")]
        try:
            return self._call("read changes", "GET", f"/v1/mailboxes/{_quote(box_id)}/changes", query=query)
        except MailApiError as error:
            if error.status == 410:
                return None
            raise

    def move(self, mail_id: str, box_id: str) -> Listing:
        return Listing.of(self._call("move", "PATCH", f"/v1/mail/{_quote(mail_id)}", {"mailbox": box_id}))

    def copy(self, mail_id: str, box_id: str) -> Listing:
        return Listing.of(self._call("copy", "POST", f"/v1/mail/{_quote(mail_id)}/copy", {"mailbox": box_id}))

    def append(self, box_id: str, raw: bytes, keywords: list[str], received_at: datetime | None) -> Listing:
        """Store a message into a mailbox (IMAP APPEND); its listing entry, with the uid the store gave it."""
        body: dict[str, Any] = {"raw": base64.b64encode(raw).decode(), "keywords": keywords}
        if received_at is not None:
            body["received_at"] = received_at.isoformat()
        item = self._call("append", "POST", f"/v1/mailboxes/{_quote(box_id)}/messages", body)
        if self.cache is not None:
            self.cache.put(self._cached_as(str(item["id"])), raw)  # the client has it; its next FETCH need not download
        return Listing.of(item)

    def expunge(self, box_id: str, ids: list[str]) -> list[str]:
        expunged: list[str] = []
        for start in range(0, len(ids), 500):  # the API takes at most 500 ids per call
            body = {"ids": ids[start : start + 500]}
            expunged += self._call("expunge", "POST", f"/v1/mailboxes/{_quote(box_id)}/expunge", body)["expunged"]
        if self.cache is not None:
            self.cache.discard([self._cached_as(mail_id) for mail_id in expunged])
        return expunged

    def delete(self, mail_id: str) -> None:
        """What POP3 DELE means: to Trash (a message already in Trash is expunged)."""
        self._call("delete", "DELETE", f"/v1/mail/{_quote(mail_id)}")


def _copies(messages: list[Listing]) -> list[Listing]:
    return [replace(m, keywords=list(m.keywords)) for m in messages]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="@:")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
