"""API keys: random bearer tokens, stored only as a SHA-256 hash, each with scopes and a tenant.

Why SHA-256 and not a password hash (bcrypt/argon2): keys are 256-bit random tokens, so there is nothing to
brute-force offline; a fast hash lets every request look its key up by hash in one DynamoDB GetItem. This is the same
choice GitHub and Stripe made for their tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "pr_"


class Scope(StrEnum):
    MESSAGES_SEND = "messages:send"
    MESSAGES_READ = "messages:read"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    EVENTS_READ = "events:read"
    SUPPRESSIONS_READ = "suppressions:read"
    SUPPRESSIONS_WRITE = "suppressions:write"
    WEBHOOKS_MANAGE = "webhooks:manage"
    DOMAINS_READ = "domains:read"  # GET /v1/domains/{domain}/doctor
    DOMAINS_MANAGE = "domains:manage"  # /v1/domains: create, verify and retire sending domains
    KEYS_MANAGE = "keys:manage"  # /v1/keys: create, list, disable and rotate the tenant's API keys
    STORES_MANAGE = "stores:manage"  # /v1/stores: the tenant's shops (Shopify/WooCommerce) and their webhook secrets
    # Inbound mailboxes; which addresses a key reaches is its ``mailboxes`` list (see Principal.may_access).
    MAILBOX_READ = "mailbox:read"
    MAILBOX_WRITE = "mailbox:write"
    MAILBOX_ADMIN = "mailbox:admin"


ALL_SCOPES = frozenset(Scope)


def parse_scopes(text: str) -> frozenset[Scope]:
    """``"messages:send,messages:read"`` or ``"all"``; unknown scopes are an error, not silently dropped."""
    if text.strip() == "all":
        return ALL_SCOPES
    scopes = set()
    for part in text.split(","):
        if part.strip():
            try:
                scopes.add(Scope(part.strip()))
            except ValueError:
                known = ", ".join(sorted(Scope))
                raise ValueError(f"unknown scope {part.strip()!r}; known scopes: {known}, or 'all'") from None
    if not scopes:
        raise ValueError("give at least one scope")
    return frozenset(scopes)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from the bearer key on every request."""

    key_id: str
    tenant: str
    scopes: frozenset[Scope]
    # Addresses whose mailboxes the key may use: "support@shop.example", "*@shop.example" (a whole domain) or "*".
    mailboxes: frozenset[str] = frozenset()
    # Sending domains the key may put in From/Sender; empty means every sending domain of the stack.
    sending_domains: frozenset[str] = frozenset()

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def may_access(self, address: str) -> bool:
        address = address.lower()
        domain = address.rpartition("@")[2]
        return bool({"*", address, f"*@{domain}"} & self.mailboxes)

    def may_send_from(self, domain: str) -> bool:
        return not self.sending_domains or domain.lower() in self.sending_domains


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
