"""A small HTTP client for the Postroom API, used by listeners that translate other protocols onto it.

stdlib ``urllib`` on purpose: the bridge runs on users' machines and needs nothing beyond the package itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:")
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,512}")  # printable ASCII, no spaces: what an API key can look like


@dataclass(frozen=True)
class ApiAnswer:
    status: int  # HTTP status; 0 when the API could not be reached
    body: dict[str, Any]

    @property
    def error_code(self) -> str:
        error = self.body.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def error_message(self) -> str:
        error = self.body.get("error")
        return str(error.get("message", "")) if isinstance(error, dict) else ""


class PostroomClient:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the Postroom API URL must start with http:// or https://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(
        self,
        key: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiAnswer:
        if not looks_like_key(key):
            # A password typed into a mail client can hold anything; only a key-shaped one is worth a request (and a
            # CR or LF in it would otherwise become a header injection attempt that urllib refuses with an error).
            return ApiAnswer(401, {"error": {"code": "unauthorized", "message": "not an API key"}})
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {**(headers or {}), "Authorization": f"Bearer {key}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return ApiAnswer(response.status, _json(response.read()))
        except urllib.error.HTTPError as error:
            return ApiAnswer(error.code, _json(error.read()))
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            return ApiAnswer(0, {"error": {"code": "unreachable", "message": f"Postroom API unreachable: {error}"}})

    def whoami(self, key: str) -> ApiAnswer:
        return self.request(key, "GET", "/v1/me")

    def submit_raw(self, key: str, message: bytes, mail_from: str, recipients: list[str]) -> ApiAnswer:
        query = [("mail_from", mail_from)] + [("rcpt", r) for r in recipients]
        return self.request(
            key,
            "POST",
            "/v1/messages/raw",
            body=message,
            content_type="message/rfc822",
            query=query,
            headers=retry_key(message, mail_from, recipients),
        )

    def file_copy(self, key: str, box_id: str, message: bytes, keywords: list[str]) -> ApiAnswer:
        """Store a copy of a message into one of the key's mailboxes (the Sent copy of a submitted message)."""
        body = json.dumps({"raw": base64.b64encode(message).decode(), "keywords": keywords}).encode()
        path = "/v1/mailboxes/" + urllib.parse.quote(box_id, safe="@:") + "/messages"
        return self.request(key, "POST", path, body=body)


def looks_like_key(value: str) -> bool:
    """Printable ASCII without spaces: anything else typed as a password is refused before it becomes a header."""
    return bool(_KEY_SHAPE.fullmatch(value))


def retry_key(message: bytes, mail_from: str, recipients: list[str]) -> dict[str, str]:
    """An Idempotency-Key for an SMTP transaction, when it can tell a retry from a new message.

    A client whose DATA answer was lost (a timeout after the API queued the message) sends the same transaction
    again; keyed by its bytes, the retry gets the first answer instead of a second send. Only a message with a
    Message-ID qualifies: a mail program gives each new message its own, while a script sending the same bare text
    every hour (no Message-ID, no Date) must get every one of them delivered.
    """
    header = message.split(b"\r\n\r\n", 1)[0]
    if not _MESSAGE_ID.search(header):
        return {}
    digest = hashlib.sha256("\0".join([mail_from, *recipients]).encode() + b"\0" + message).hexdigest()
    return {"Idempotency-Key": f"smtp-{digest[:48]}"}


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"error": {"code": "bad_response", "message": "the API answered with something that is not JSON"}}
    return value if isinstance(value, dict) else {"value": value}
