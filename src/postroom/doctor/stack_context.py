"""The doctor as this stack runs it: the domain's delivery path, the SMTP egress address and the resolvers come from
the stack's settings, the DKIM tokens from SES."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from postroom.core.settings import DeliveryPath
from postroom.deliver.mx import parse_nameservers
from postroom.doctor.checks import DoctorOptions, diagnose, read_ses_identity
from postroom.doctor.lookup import DnsLookup

if TYPE_CHECKING:
    from postroom.core.settings import Settings
    from postroom.doctor.report import Report

__all__ = ["ses_inbound_endpoint", "stack_diagnosis"]


def ses_inbound_endpoint(region: str | None) -> str | None:
    """Where SES receives mail in ``region`` (the MX an inbound domain should name)."""
    return f"inbound-smtp.{region}.amazonaws.com" if region else None


def stack_diagnosis(
    domain: str,
    settings: Settings,
    *,
    sesv2: Any,
    inbound: bool = False,
    dkim_selectors: tuple[str, ...] = (),
    budget_seconds: float = 20.0,
) -> Report:
    delivery = settings.delivery_for(domain)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    nameservers = parse_nameservers(settings.dns_nameservers) if settings.dns_nameservers else None
    options = DoctorOptions(
        delivery=delivery,
        egress_ips=tuple(ip.strip() for ip in settings.smtp_egress_ips.split(",") if ip.strip()),
        ses=read_ses_identity(sesv2, domain) if delivery is DeliveryPath.SES else None,
        dkim_selectors=dkim_selectors,
        inbound=inbound,
        expected_mx=ses_inbound_endpoint(region) if inbound else None,
        return_path_domain=settings.return_path_domain or None,
    )
    return diagnose(domain, options, DnsLookup(nameservers, budget_seconds=budget_seconds))
