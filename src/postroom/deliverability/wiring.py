"""How the worker's batch (``postroom.delivery.batch``) picks up deliverability: a few calls, built once per execution
environment so that DKIM keys and MTA-STS policies stay cached across batches.

Imports are deferred: a deployment without DKIM selectors never loads dkimpy or cryptography.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postroom.deliverability.dkim import DkimSigner
    from postroom.delivery.worker import SmtpAgent
    from postroom.settings import Settings

__all__ = ["reset", "sign_outgoing"]

_lock = threading.Lock()
_signer: DkimSigner | None = None


def sign_outgoing(agent: SmtpAgent, settings: Settings) -> SmtpAgent:
    """The batch's SMTP agent, wrapped to DKIM-sign when any sending domain has selectors configured."""
    global _signer
    if not settings.dkim_selectors:
        return agent
    from postroom.deliverability.dkim import DkimSigner, ParameterKeyStore, SigningSmtpAgent

    with _lock:
        if _signer is None:
            _signer = DkimSigner(settings.dkim_selectors, ParameterKeyStore.from_settings(settings))
        signer = _signer
    return SigningSmtpAgent(agent, signer)


def reset() -> None:
    """Forget cached keys and policies (tests and the local stack switch AWS emulations between runs)."""
    global _signer
    with _lock:
        _signer = None
