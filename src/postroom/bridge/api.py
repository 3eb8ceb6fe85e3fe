"""The mailbox HTTP API as the IMAP and POP3 listeners need it: blocking calls, one client key each.

Everything a mail client does goes back through the API (flags, moves, copies, expunges), so the bridge holds no mail
state of its own beyond what a session has listed, and the API's scopes decide what a key may do.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from postroom.submission.client import ApiAnswer, PostroomClient

PAGE = 200  # the API's largest page


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

    @classmethod
    def of(cls, item: dict[str, Any]) -> Listing:
        return cls(
            id=str(item["id"]),
            uid=int(item.get("uid") or 0),
            keywords=list(item.get("keywords") or []),
            size=int(item.get("size") or 0),
            received_at=str(item.get("received_at") or ""),
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib re-sends every request header on a redirect, Authorization included. The raw and attachment routes
    # redirect to presigned S3 URLs, which must be fetched without the key (S3 refuses a second credential, and the
    # key has no business leaving for another host).
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


_no_redirect = urllib.request.build_opener(_NoRedirect)


class MailApi:
    def __init__(self, client: PostroomClient, key: str) -> None:
        self.client = client
        self.key = key

    def _call(self, doing: str, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        answer = self.client.request(self.key, method, path, body=data, **kwargs)
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

    def listing(self, box_id: str) -> tuple[int, list[Listing]]:
        """Every message of the mailbox, oldest uid first, and the state the listing is at least as new as."""
        box = self.mailbox(box_id)  # first: its state is then no newer than what the pages show
        found: dict[str, Listing] = {}
        cursor: str | None = None
        while True:
            query = [("limit", str(PAGE))] + ([("cursor", cursor)] if cursor else [])
            page = self._call("list messages", "GET", f"/v1/mailboxes/{_quote(box_id)}/messages", query=query)
            for item in page["messages"]:
                found[item["id"]] = Listing.of(item)
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return int(box["state"]), sorted(found.values(), key=lambda m: m.uid)

    def raw(self, mail_id: str) -> bytes:
        """The message as received: the API answers with a presigned URL, fetched without the key."""
        url = self.client.base_url + f"/v1/mail/{_quote(mail_id)}/raw"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.key}"})  # noqa: S310
        try:
            with _no_redirect.open(request, timeout=self.client.timeout) as response:
                location = json.loads(response.read()).get("url")
        except urllib.error.HTTPError as error:
            if error.code not in (301, 302, 303, 307):
                raise MailApiError(ApiAnswer(error.code, _json(error.read())), f"read {mail_id}") from None
            location = error.headers.get("Location")
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise MailApiError(
                ApiAnswer(0, {"error": {"code": "unreachable", "message": str(error)}}), "read"
            ) from None
        if not location or not str(location).startswith(("http://", "https://")):
            raise MailApiError(ApiAnswer(502, {}), f"read {mail_id}: no download URL")
        with urllib.request.urlopen(location, timeout=self.client.timeout) as response:  # noqa: S310 - http(s) only
            return bytes(response.read())

    def set_keywords(self, mail_id: str, changes: dict[str, bool]) -> Listing:
        item = self._call("set flags", "PATCH", f"/v1/mail/{_quote(mail_id)}", {"keywords": changes})
        return Listing.of(item)

    def move(self, mail_id: str, box_id: str) -> Listing:
        return Listing.of(self._call("move", "PATCH", f"/v1/mail/{_quote(mail_id)}", {"mailbox": box_id}))

    def copy(self, mail_id: str, box_id: str) -> Listing:
        return Listing.of(self._call("copy", "POST", f"/v1/mail/{_quote(mail_id)}/copy", {"mailbox": box_id}))

    def expunge(self, box_id: str, ids: list[str]) -> list[str]:
        expunged: list[str] = []
        for start in range(0, len(ids), 500):  # the API takes at most 500 ids per call
            body = {"ids": ids[start : start + 500]}
            expunged += self._call("expunge", "POST", f"/v1/mailboxes/{_quote(box_id)}/expunge", body)["expunged"]
        return expunged

    def delete(self, mail_id: str) -> None:
        """What POP3 DELE means: to Trash (a message already in Trash is expunged)."""
        self._call("delete", "DELETE", f"/v1/mail/{_quote(mail_id)}")


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="@:")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
