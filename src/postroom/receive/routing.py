"""Which mailbox a recipient address lands in: plus-addressing, per-domain catch-all, or rejection.

``orders+1234@shop.example`` is filed for ``orders@shop.example`` with the tag ``1234`` kept (the common
"subaddress" convention, RFC 5233). An address nobody registered goes to its domain's catch-all mailbox when the
domain has one (``InboundCatchAll``), and is rejected otherwise, as an MTA answers 550 5.1.1 for an unknown user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from postroom.core.settings import Settings

TAG_SEPARATOR = "+"


@dataclass(frozen=True)
class Destination:
    recipient: str  # the envelope recipient as received, lower-cased
    address: str  # the address whose mailboxes receive it
    tag: str | None
    catch_all: bool = False
    registered: bool = True  # False: a catch-all address, created on first use
    flags: tuple[str, ...] = ()  # added to the filed copy's flags (e.g. why a bounce was kept)


@dataclass(frozen=True)
class Rejection:
    recipient: str
    status: str  # RFC 3463 enhanced status
    reason: str
    # Whether the sender is told (SES SendBounce). Not for refused bounce addresses: their sender is forged or null,
    # and bouncing to it would be backscatter (RFC 5321 §4.5.5: no notification to a bounce).
    notify: bool = True


def route(recipient: str, settings: Settings, exists: Callable[[str], bool]) -> Destination | Rejection:
    recipient = recipient.strip().lower()
    local, at, domain = recipient.rpartition("@")
    domain = domain.rstrip(".")
    if not at or not local:
        return Rejection(recipient, "5.1.3", f"{recipient!r} is not an address")
    if domain not in settings.inbound_domains:
        return Rejection(recipient, "5.7.1", f"{domain} is not an inbound domain of this Postroom stack (no relaying)")
    base, _, tag = local.partition(TAG_SEPARATOR)
    address = f"{base or local}@{domain}"
    if exists(address):
        return Destination(recipient, address, tag or None)
    catch_all = settings.inbound_catch_all.get(domain)
    if catch_all:
        # The catch-all address itself is not "caught": it just has not been registered yet.
        target = f"{catch_all}@{domain}"
        return Destination(recipient, target, tag or None, catch_all=address != target, registered=False)
    return Rejection(recipient, "5.1.1", f"<{recipient}>: no such mailbox here")


def catch_all_addresses(settings: Settings) -> list[str]:
    """The catch-all addresses the settings name on the stack's inbound domains. They are mailboxes of their own,
    created from the start (postroom.wiring.mailbox_wiring) so that a client can log in to one before its first mail."""
    configured = settings.inbound_catch_all.items()
    return sorted(f"{local}@{domain}" for domain, local in configured if domain in settings.inbound_domains)
