"""The explain dry run's collaborators: the send API's stores and domain gate, and the worker's own MX resolver, TLS
policies (MTA-STS included), DKIM selectors and keys, pacer and reputation breaker — built here once per execution
environment so that ``POST /v1/messages/explain`` answers with what the worker would actually use.

Every collaborator is read-only for this use: the MTA-STS cache may be read from the table but is never written, and
the pacer is only asked for its outlook, so a dry run leaves no trace in DynamoDB, S3 or SQS.
"""

from __future__ import annotations

import ssl
import threading
from typing import TYPE_CHECKING

from postroom.core import aws

if TYPE_CHECKING:
    from collections.abc import Callable

    from postroom.core.sending_pause import SendingPauses
    from postroom.core.settings import Settings
    from postroom.deliver.mta_sts import DynamoPolicyCache, MtaStsPolicy
    from postroom.deliver.mx import MxResolver
    from postroom.deliver.tls_policy import TlsPolicies
    from postroom.preflight.explain import Explainer
    from postroom.wiring.services import Services

__all__ = ["explainer", "reset_explainer"]

_lock = threading.Lock()
_explainer: Explainer | None = None
_built_for: Services | None = None  # held, not its id: a reset's new Services may reuse an id


class _ReadOnlyPolicyCache:
    """The table's MTA-STS policies, read but never written: a dry run must not change what the worker finds."""

    def __init__(self, durable: DynamoPolicyCache) -> None:
        self._durable = durable

    def get(self, domain: str) -> MtaStsPolicy | None:
        return self._durable.get(domain)

    def put(self, policy: MtaStsPolicy) -> None:
        return None


def _tls_policies(settings: Settings, resolver: MxResolver) -> TlsPolicies:
    # The same layering as the worker's (postroom.wiring.worker_deliverability.tls_policies), with a read-only table.
    from postroom.core.deliverability_settings import TlsLevel
    from postroom.deliver.mta_sts import (
        DynamoPolicyCache,
        LayeredPolicyCache,
        MemoryPolicyCache,
        MtaStsResolver,
        PolicyFetcher,
    )
    from postroom.deliver.tls_policy import MtaStsTlsPolicies, StaticTlsPolicies

    default = TlsLevel.VERIFY if settings.smtp_tls_verify else TlsLevel.OPPORTUNISTIC
    static = StaticTlsPolicies(settings.deliverability.tls_policy, default=default)
    if not settings.deliverability.mta_sts:
        return static
    fetcher = PolicyFetcher(
        resolver.host_addresses,
        context=ssl.create_default_context(cafile=settings.deliverability.tls_ca_file or None),
        port=settings.deliverability.mta_sts_port,
        timeout=min(settings.smtp_timeout, 10.0),
    )
    durable = _ReadOnlyPolicyCache(DynamoPolicyCache(aws.client("dynamodb"), settings.table))
    return MtaStsTlsPolicies(
        static, MtaStsResolver(resolver.txt, fetcher, LayeredPolicyCache(MemoryPolicyCache(), durable))
    )


def _breaker_state(pauses: SendingPauses) -> Callable[[str, str], dict[str, object]]:
    def state(tenant: str, domain: str) -> dict[str, object]:
        pause = pauses.blocking(tenant, domain)
        return pause.public() if pause is not None else {"state": "closed"}

    return state


def explainer(svc: Services) -> Explainer:
    """Imports are deferred to the first dry run: the send API's cold start does not load dnspython, dkimpy or the
    MTA-STS fetcher for a route most requests never call."""
    global _explainer, _built_for
    from postroom.core.domain_registry import DkimSelectors
    from postroom.deliver.dkim import ParameterKeyStore
    from postroom.deliver.mx import MxResolver, parse_nameservers
    from postroom.deliver.pacing import AccountSendRate, PaceWindows, PacingFilter
    from postroom.deliver.tls_sightings import TlsSightings
    from postroom.preflight.explain import Explainer
    from postroom.suppression.suppression_store import SuppressionStore

    with _lock:
        if _explainer is None or _built_for is not svc:
            settings = svc.settings
            nameservers = parse_nameservers(settings.dns_nameservers) if settings.dns_nameservers else None
            resolver = MxResolver(nameservers=nameservers)
            inbound = settings.inbound_domains
            _explainer = Explainer(
                settings=settings,
                domains=svc.domains,
                templates=svc.templates,
                suppressions=SuppressionStore(aws.client("dynamodb"), settings.table),
                mx=resolver,
                tls=_tls_policies(settings, resolver),
                pacing=PacingFilter(
                    settings, PaceWindows(aws.client("dynamodb"), settings.table), AccountSendRate(aws.client("sesv2"))
                ),
                dkim_selectors=DkimSelectors(settings.deliverability.dkim_selectors, svc.domains),
                dkim_keys=ParameterKeyStore.from_settings(settings.deliverability),
                hosts_locally=lambda address: bool(inbound) and address.rpartition("@")[2].lower() in inbound,
                breaker=None if svc.pauses is None else _breaker_state(svc.pauses),
                tls_seen=TlsSightings(aws.client("dynamodb"), settings.table).last,
                uploads=svc.uploads,
            )
            _built_for = svc
        return _explainer


def reset_explainer() -> None:
    global _explainer, _built_for
    with _lock:
        _explainer = None
        _built_for = None
