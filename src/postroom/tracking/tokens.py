"""Signed link tokens: ``<payload>.<signature>``, both base64url without padding.

The payload is compact JSON: ``k`` the kind (``o`` open, ``c`` click, ``u`` unsubscribe), ``m`` the message id, ``r``
the recipient when the message has exactly one, ``u`` the target URL of a click. The signature is the first 16 bytes
(128 bits) of HMAC-SHA256 over a versioned label and the payload, keyed with the stack's signing secret. The kind is
inside the signed payload, so a pixel token cannot be replayed as an unsubscribe, and a click token redirects only to
the URL that was in the message (no open redirect).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum

_LABEL = b"postroom-link-v1."
_SIGNATURE_BYTES = 16


class LinkKind(StrEnum):
    OPEN = "o"
    CLICK = "c"
    UNSUBSCRIBE = "u"


class InvalidTokenError(ValueError):
    pass


@dataclass(frozen=True)
class LinkClaims:
    kind: LinkKind
    message_id: str
    recipient: str | None = None
    url: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, key: str, public_url: str) -> None:
        if len(key) < 16:
            raise ValueError("the link signing key is too short")
        self._key = key.encode()
        self.public_url = public_url.rstrip("/")

    def _signature(self, payload: str) -> bytes:
        return hmac.new(self._key, _LABEL + payload.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def token(self, claims: LinkClaims) -> str:
        body: dict[str, str] = {"k": claims.kind.value, "m": claims.message_id}
        if claims.recipient:
            body["r"] = claims.recipient
        if claims.url:
            body["u"] = claims.url
        payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{payload}.{_b64(self._signature(payload))}"

    def url(self, claims: LinkClaims) -> str:
        return f"{self.public_url}/t/{claims.kind.value}/{self.token(claims)}"

    def verify(self, token: str, kind: LinkKind) -> LinkClaims:
        payload, dot, signature = token.partition(".")
        try:
            expected = self._signature(payload)
            if not dot or not hmac.compare_digest(_unb64(signature), expected):
                raise InvalidTokenError("bad signature")
            body = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise InvalidTokenError(str(exc)) from None
        if not isinstance(body, dict) or body.get("k") != kind.value or not isinstance(body.get("m"), str):
            raise InvalidTokenError("not a link of this kind")
        return LinkClaims(kind, body["m"], body.get("r"), body.get("u"))
