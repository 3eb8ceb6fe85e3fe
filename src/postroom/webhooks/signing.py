"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec section "Signature scheme").

``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")), where the
key is the base64-decoded part of the subscription's ``whsec_...`` secret. The id stays the same on every retry of one
event, so receivers can deduplicate; the timestamp is the attempt's, so they can refuse replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
SECRET_BYTES = 32  # Standard Webhooks asks for 24-64 random bytes
_MIN_KEY_BYTES, _MAX_KEY_BYTES = 24, 64


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key in a ``whsec_`` secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by standard base64") from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValueError(f"a webhook secret carries {_MIN_KEY_BYTES}-{_MAX_KEY_BYTES} bytes of key")
    return key


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
