"""Why a delivery could not happen, split the way the retry policy needs it: permanent (bounce) or transient (defer).

Each error carries the RFC 3463 enhanced status code that goes into the recipient's result and, later, into the
bounce notice the sender gets.
"""

from __future__ import annotations

__all__ = [
    "DeliveryError",
    "DnsTemporaryError",
    "NoMxAddressError",
    "NoSuchDomainError",
    "NullMxError",
    "PermanentDeliveryError",
    "TransientDeliveryError",
    "UnroutableDomainError",
]


class DeliveryError(Exception):
    """A failure that concerns every recipient of one delivery attempt."""

    default_status = "4.0.0"

    def __init__(self, message: str, enhanced_status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.enhanced_status = enhanced_status or self.default_status

    def __str__(self) -> str:
        return f"{self.enhanced_status} {self.message}"


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: the recipients bounce."""

    default_status = "5.0.0"


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: the recipients are deferred."""

    default_status = "4.0.0"


class NoSuchDomainError(PermanentDeliveryError):
    """The domain does not exist (NXDOMAIN) or is not a valid domain name."""

    default_status = "5.1.2"  # RFC 3463: bad destination system address


class NullMxError(PermanentDeliveryError):
    """The domain publishes a null MX (RFC 7505): it accepts no mail at all."""

    default_status = "5.1.10"  # RFC 7505: recipient address has null MX


class UnroutableDomainError(PermanentDeliveryError):
    """The domain exists but has neither MX records nor an address to use as its implicit MX."""

    default_status = "5.4.4"  # RFC 3463: unable to route


class DnsTemporaryError(TransientDeliveryError):
    """The DNS did not answer usefully this time: timeout, SERVFAIL, no nameserver reachable."""

    default_status = "4.4.3"  # RFC 3463: directory server failure


class NoMxAddressError(TransientDeliveryError):
    """MX records exist, but none of their hosts resolves to an address (often a zone being edited)."""

    default_status = "4.4.4"  # RFC 3463: unable to route
