"""The deliverability settings (``Settings.deliverability``) and their own syntax, parsed once at cold start with the
rest of :class:`postroom.core.settings.Settings`.

Light on purpose: settings import this module on every cold start, so nothing here imports DNS, TLS or AWS code.

- ``POSTROOM_DKIM_SELECTORS="shop.example=s2026a,shop.example=e2026a"``: the keys that sign mail from a sending
  domain, one entry per signature (an RSA and an Ed25519 key give two signatures).
- ``POSTROOM_TLS_POLICY="bank.example=verify,*.gov.example=required,*=opportunistic"``: the TLS policy per recipient
  domain; ``*.d`` covers every domain below ``d`` (not ``d`` itself), ``*`` every domain.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DeliverabilitySettings", "TlsLevel", "parse_dkim_selectors", "parse_tls_policy", "policy_for_domain"]

# RFC 6376 §3.1: a selector is one or more DNS labels ("s2026a" or "mail.2026"); the name it is published under,
# <selector>._domainkey.<domain>, must stay a valid host name, so labels are letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SELECTOR = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")


class TlsLevel(StrEnum):
    """How much TLS a delivery to a domain needs, from least to most (Postfix's "may", "encrypt", "secure")."""

    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, any certificate; plain text otherwise (RFC 7435)
    REQUIRED = "required"  # STARTTLS or no delivery; any certificate
    VERIFY = "verify"  # STARTTLS with a certificate valid for the MX host name, or no delivery

    @property
    def rank(self) -> int:
        return list(TlsLevel).index(self)


def parse_dkim_selectors(spec: str) -> dict[str, tuple[str, ...]]:
    """``"shop.example=s1,shop.example=e1"`` → ``{"shop.example": ("s1", "e1")}``; ValueError naming the entry."""
    selectors: dict[str, list[str]] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        domain, equals, selector = (part.strip() for part in entry.partition("="))
        domain = domain.lower().rstrip(".")
        if not equals or not _DOMAIN.match(domain) or not _SELECTOR.match(selector):
            raise ValueError(f"DKIM entry {entry!r} must be domain=selector, e.g. shop.example=s2026a")
        if selector in selectors.get(domain, []):
            raise ValueError(f"DKIM selector {selector!r} is listed twice for {domain}")
        selectors.setdefault(domain, []).append(selector)
    return {domain: tuple(names) for domain, names in selectors.items()}


def parse_tls_policy(spec: str) -> dict[str, TlsLevel]:
    """``"bank.example=verify,*.gov.example=required"`` → pattern → level; ValueError naming the entry."""
    policy: dict[str, TlsLevel] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        pattern, equals, level = (part.strip() for part in entry.partition("="))
        pattern = pattern.lower().rstrip(".")
        bare = pattern.removeprefix("*.")
        if not equals or not (pattern == "*" or _DOMAIN.match(bare) or (bare != pattern and _SELECTOR.match(bare))):
            raise ValueError(f"TLS policy entry {entry!r} must be domain=level, *.domain=level or *=level")
        try:
            policy[pattern] = TlsLevel(level.lower())
        except ValueError:
            levels = ", ".join(level.value for level in TlsLevel)
            raise ValueError(f"TLS policy entry {entry!r}: the level must be one of {levels}") from None
    return policy


def policy_for_domain(policy: dict[str, TlsLevel], domain: str, default: TlsLevel) -> TlsLevel:
    """The most specific entry wins: the domain itself, then the nearest ``*.parent``, then ``*``, then ``default``."""
    name = domain.lower().rstrip(".")
    if name in policy:
        return policy[name]
    labels = name.split(".")
    for i in range(1, len(labels)):
        wildcard = "*." + ".".join(labels[i:])
        if wildcard in policy:
            return policy[wildcard]
    return policy.get("*", default)


class DeliverabilitySettings(BaseModel):
    """README, "Deliverability": DKIM keys per sending domain, read from SSM Parameter Store or Secrets Manager at
    <prefix>/<domain>/<selector>; the TLS policy per recipient domain, and MTA-STS (RFC 8461). That every DKIM domain
    is a sending domain is checked by ``Settings``, which knows both."""

    model_config = ConfigDict(frozen=True)

    dkim_selectors: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    dkim_key_source: Literal["ssm", "secretsmanager"] = "ssm"
    dkim_key_prefix: str = Field(default="postroom/dkim", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    dkim_key_cache_seconds: int = Field(default=300, ge=0)
    tls_policy: dict[str, TlsLevel] = Field(default_factory=dict)
    mta_sts: bool = True
    mta_sts_port: int = Field(default=443, ge=1, le=65535)  # HTTPS port of mta-sts.<domain>; tests use a high one
    tls_ca_file: str = ""  # PEM bundle trusted for MX and MTA-STS certificates; empty = the system's

    @field_validator("dkim_selectors", mode="before")
    @classmethod
    def _parse_dkim(cls, value: object) -> object:
        return parse_dkim_selectors(value) if isinstance(value, str) else value

    @field_validator("tls_policy", mode="before")
    @classmethod
    def _parse_tls_policy(cls, value: object) -> object:
        return parse_tls_policy(value) if isinstance(value, str) else value
