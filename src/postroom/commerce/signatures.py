"""Webhook signatures: both platforms send base64(HMAC-SHA256(secret, raw body)) in a header.

The HMAC is computed over the body's bytes exactly as received - re-serialising parsed JSON would change them - and
compared in constant time, so the comparison leaks nothing about how much of a forged signature was right.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SHOPIFY_HEADER = "X-Shopify-Hmac-Sha256"
WOOCOMMERCE_HEADER = "X-WC-Webhook-Signature"


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(body: bytes, signature: str | None, secret: str) -> bool:
    if not signature or not secret:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), signature.strip().encode())
