"""The deliverability settings' own syntax, parsed once at cold start (``postroom.core.settings`` validates with these).

Light on purpose: settings import this module on every cold start, so nothing here imports DNS, TLS or AWS code.

- ``POSTROOM_DKIM_SELECTORS="shop.example=s2026a,shop.example=e2026a"``: the keys that sign mail from a sending
  domain, one entry per signature (an RSA and an Ed25519 key give two signatures).
- ``POSTROOM_TLS_POLICY="bank.example=verify,*.gov.example=required,*=opportunistic"``: the TLS policy per recipient
  domain; ``*.d`` covers every domain below ``d`` (not ``d`` itself), ``*`` every domain.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["TlsLevel", "parse_dkim_selectors", "parse_tls_policy", "policy_for_domain"]

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
