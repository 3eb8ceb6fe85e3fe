"""Recipient domains grouped by mailbox provider, a low-cardinality metric dimension.

The big providers throttle, filter and bounce each in their own way, so a bounce-rate spike "at Microsoft" is worth
seeing apart from the rest. A domain is classified by its name (gmail.com, outlook.com...) or, for the many company
domains hosted by a provider (Google Workspace, Microsoft 365), by the MX host that answered. Anything else is
``other``: one dimension value per provider keeps CloudWatch's metric count (and bill) small.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DomainClass", "classify"]


class DomainClass(StrEnum):
    GMAIL = "gmail"  # Google: gmail.com and Google Workspace domains
    MICROSOFT = "microsoft"  # Outlook.com/Hotmail and Microsoft 365 domains
    YAHOO = "yahoo"  # Yahoo and AOL (one operator, one MX fleet)
    APPLE = "apple"  # iCloud
    OTHER = "other"


_DOMAINS: dict[str, DomainClass] = {
    "gmail.com": DomainClass.GMAIL,
    "googlemail.com": DomainClass.GMAIL,
    "ymail.com": DomainClass.YAHOO,
    "rocketmail.com": DomainClass.YAHOO,
    "aol.com": DomainClass.YAHOO,
    "aim.com": DomainClass.YAHOO,
    "icloud.com": DomainClass.APPLE,
    "me.com": DomainClass.APPLE,
    "mac.com": DomainClass.APPLE,
}
# Consumer brands registered under many country domains (hotmail.co.uk, yahoo.fr, live.nl...).
_BRANDS: dict[str, DomainClass] = {
    "hotmail": DomainClass.MICROSOFT,
    "outlook": DomainClass.MICROSOFT,
    "live": DomainClass.MICROSOFT,
    "msn": DomainClass.MICROSOFT,
    "windowslive": DomainClass.MICROSOFT,
    "yahoo": DomainClass.YAHOO,
}
# MX host suffixes of the providers' inbound fleets: gmail-smtp-in.l.google.com, aspmx.l.google.com,
# example-com.mail.protection.outlook.com, mta5.am0.yahoodns.net, mx01.mail.icloud.com.
_MX_SUFFIXES: tuple[tuple[str, DomainClass], ...] = (
    ("google.com", DomainClass.GMAIL),
    ("googlemail.com", DomainClass.GMAIL),
    ("outlook.com", DomainClass.MICROSOFT),
    ("hotmail.com", DomainClass.MICROSOFT),
    ("yahoodns.net", DomainClass.YAHOO),
    ("icloud.com", DomainClass.APPLE),
)
_MAX_COUNTRY_LABELS = 2  # "yahoo" + "co.uk" at most: yahoo.example.org is not Yahoo


def classify(domain: str, mx_host: str | None = None) -> DomainClass:
    """The provider of ``domain`` (a recipient's domain), using the MX host that answered when there is one."""
    name = domain.strip().rstrip(".").lower()
    if name in _DOMAINS:
        return _DOMAINS[name]
    brand, _, rest = name.partition(".")
    if brand in _BRANDS and rest and rest.count(".") < _MAX_COUNTRY_LABELS and len(rest.split(".")[0]) <= 3:
        return _BRANDS[brand]
    host = (mx_host or "").strip().rstrip(".").lower()
    for suffix, kind in _MX_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return kind
    return DomainClass.OTHER
