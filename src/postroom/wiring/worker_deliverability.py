"""How the worker's batch (``postroom.wiring.worker_batch``) picks up deliverability: a few calls, built once per
execution
environment so that DKIM keys and MTA-STS policies stay cached across batches.

Imports are deferred to the first batch that delivers over SMTP: a worker that only sends through SES never loads dkimpy
or cryptography.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from postroom.core.deliverability_settings import TlsLevel
from postroom.deliver.tls_policy import MtaStsTlsPolicies, StaticTlsPolicies, TlsPolicies

if TYPE_CHECKING:
    from postroom.core.settings import Settings
    from postroom.deliver.deliverer import SmtpAgent
    from postroom.deliver.dkim import DkimSigner
    from postroom.deliver.mta_sts import MtaStsResolver
    from postroom.deliver.mx import MxResolver

__all__ = ["reset", "sign_outgoing", "tls_policies"]

_lock = threading.Lock()
_signer: DkimSigner | None = None
_mta_sts: MtaStsResolver | None = None


def sign_outgoing(agent: SmtpAgent, settings: Settings) -> SmtpAgent:
    """The batch's SMTP agent, wrapped to DKIM-sign: with the selectors configured (DkimSelectors) and with the keys
    Postroom made for domains added through the API (the domain registry)."""
    global _signer
    from postroom.core import aws
    from postroom.core.domain_registry import DkimSelectors, DomainRegistry, SendingDomainGate
    from postroom.deliver.dkim import DkimSigner, ParameterKeyStore, SigningSmtpAgent

    with _lock:
        if _signer is None:
            registry = SendingDomainGate(
                settings.sending_domains, DomainRegistry(aws.client("dynamodb"), settings.table)
            )
            selectors = DkimSelectors(settings.deliverability.dkim_selectors, registry)
            _signer = DkimSigner(selectors, ParameterKeyStore.from_settings(settings.deliverability))
        signer = _signer
    return SigningSmtpAgent(agent, signer)


def tls_policies(settings: Settings, resolver: MxResolver) -> TlsPolicies:
    """The TLS policy per recipient domain: ``POSTROOM_TLS_POLICY``, raised by MTA-STS unless that is turned off."""
    default = TlsLevel.VERIFY if settings.smtp_tls_verify else TlsLevel.OPPORTUNISTIC
    static = StaticTlsPolicies(settings.deliverability.tls_policy, default=default)
    if not settings.deliverability.mta_sts:
        return static
    global _mta_sts
    with _lock:
        if _mta_sts is None:
            _mta_sts = _mta_sts_resolver(settings, resolver)
        mta_sts = _mta_sts
    return MtaStsTlsPolicies(static, mta_sts)


def _mta_sts_resolver(settings: Settings, resolver: MxResolver) -> MtaStsResolver:
    import ssl

    from postroom.core import aws
    from postroom.deliver.mta_sts import (
        DynamoPolicyCache,
        LayeredPolicyCache,
        MemoryPolicyCache,
        MtaStsResolver,
        PolicyFetcher,
    )

    fetcher = PolicyFetcher(
        resolver.host_addresses,
        context=ssl.create_default_context(cafile=settings.deliverability.tls_ca_file or None),
        port=settings.deliverability.mta_sts_port,
        timeout=min(settings.smtp_timeout, 10.0),
    )
    cache = LayeredPolicyCache(MemoryPolicyCache(), DynamoPolicyCache(aws.client("dynamodb"), settings.table))
    return MtaStsResolver(resolver.txt, fetcher, cache)


def reset() -> None:
    """Forget cached keys and policies (tests and the local stack switch AWS emulations between runs)."""
    global _signer, _mta_sts
    with _lock:
        _signer = None
        _mta_sts = None
