"""Which TLS a delivery to a recipient domain needs: the operator's static policy, raised by the domain's MTA-STS.

``POSTROOM_TLS_POLICY`` sets a level per domain (``opportunistic``, ``required``, ``verify``; see
:mod:`postroom.core.deliverability_settings`); domains without an entry get ``verify`` when
``POSTROOM_SMTP_TLS_VERIFY`` is
on, else ``opportunistic``. An MTA-STS policy in ``enforce`` mode (RFC 8461 §5) raises the level to ``verify`` and
restricts delivery to the MX hosts it names; one in ``testing`` mode changes nothing but is reported when a delivery
would have failed it. The SMTP agent asks :meth:`TlsPolicies.policy_for` once per domain and delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from postroom.core.deliverability_settings import TlsLevel, policy_for_domain

if TYPE_CHECKING:
    from postroom.deliver.mta_sts import MtaStsPolicy, MtaStsResolver

__all__ = ["DomainTlsPolicy", "MtaStsTlsPolicies", "StaticTlsPolicies", "TlsPolicies"]


@dataclass(frozen=True)
class DomainTlsPolicy:
    level: TlsLevel
    mta_sts: MtaStsPolicy | None = None  # an enforce or testing policy; None when the domain publishes none

    @property
    def enforced_mx(self) -> bool:
        """Only MX hosts matching the MTA-STS ``mx:`` patterns may be used (RFC 8461 §4.1, mode enforce)."""
        return self.mta_sts is not None and self.mta_sts.mode == "enforce"

    @property
    def testing(self) -> MtaStsPolicy | None:
        return self.mta_sts if self.mta_sts is not None and self.mta_sts.mode == "testing" else None

    @property
    def label(self) -> str:
        """What a recipient's result records as ``tls_policy``."""
        if self.enforced_mx:
            return "mta-sts"
        if self.testing is not None:
            return f"{self.level.value} (mta-sts testing)"
        return self.level.value

    def allows_mx(self, hostname: str) -> bool:
        return self.mta_sts is None or self.mta_sts.matches(hostname)


class TlsPolicies(Protocol):
    def policy_for(self, domain: str) -> DomainTlsPolicy: ...


class StaticTlsPolicies:
    """The operator's policy only: ``{"bank.example": VERIFY, "*.gov.example": REQUIRED}`` and a default."""

    def __init__(self, policy: dict[str, TlsLevel] | None = None, default: TlsLevel = TlsLevel.OPPORTUNISTIC) -> None:
        self._policy = policy or {}
        self._default = default

    def level_for(self, domain: str) -> TlsLevel:
        return policy_for_domain(self._policy, domain, self._default)

    def policy_for(self, domain: str) -> DomainTlsPolicy:
        return DomainTlsPolicy(self.level_for(domain))


class MtaStsTlsPolicies:
    """The static policy, with each domain's MTA-STS policy on top (it can only make delivery stricter)."""

    def __init__(self, static: StaticTlsPolicies, mta_sts: MtaStsResolver) -> None:
        self._static = static
        self._mta_sts = mta_sts

    def policy_for(self, domain: str) -> DomainTlsPolicy:
        level = self._static.level_for(domain)
        policy = self._mta_sts.policy(domain)
        if policy is not None and policy.mode == "enforce":
            # RFC 8461 §4.2: with an enforce policy the MX certificate must verify for the MX host name.
            level = TlsLevel.VERIFY
        return DomainTlsPolicy(level, policy)
