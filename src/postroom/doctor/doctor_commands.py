"""``postroom doctor example.com``: the domain checks from a terminal, with the operator's own resolver (or
``--nameserver``) and, with ``--ses``, the operator's AWS credentials for the Easy DKIM tokens."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["add_doctor_command"]


def add_doctor_command(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check a sending domain's DNS: SPF, DKIM, DMARC, MX, MTA-STS",
        description="Checks a sending domain's DNS records and says what is wrong and which record to publish. "
        "Exit status 1 if a check failed.",
    )
    doctor.add_argument("domain")
    doctor.add_argument("--delivery", choices=["ses", "smtp"], default="ses", help="how the domain sends (ses)")
    doctor.add_argument("--nameserver", help="resolvers to ask, host[:port],... (default: the system's)")
    doctor.add_argument("--inbound", action="store_true", help="the domain also receives mail: check MX, MTA-STS")
    doctor.add_argument("--expect-mx", help="the MX host inbound mail should go to (default with --region: SES's)")
    doctor.add_argument("--egress-ip", action="append", default=[], help="direct SMTP's public address (repeatable)")
    doctor.add_argument(
        "--return-path", help="direct SMTP's return-path domain (ReturnPathDomain): SPF is checked there"
    )
    doctor.add_argument("--dkim-selector", action="append", default=[], help="a DKIM selector to check (repeatable)")
    doctor.add_argument("--dkim-token", action="append", default=[], help="an SES Easy DKIM token (repeatable)")
    doctor.add_argument("--ses", action="store_true", help="read the domain's DKIM tokens from SES (AWS credentials)")
    doctor.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    doctor.add_argument("--timeout", type=float, default=20.0, help="seconds for all DNS lookups together")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from postroom.core.settings import DeliveryPath
    from postroom.deliver.mx import parse_nameservers
    from postroom.doctor.checks import DoctorOptions, diagnose, read_ses_identity
    from postroom.doctor.lookup import DnsLookup
    from postroom.doctor.stack_context import ses_inbound_endpoint

    try:
        nameservers = parse_nameservers(args.nameserver) if args.nameserver else None
    except ValueError as error:
        raise SystemExit(str(error)) from None
    delivery = DeliveryPath(args.delivery)
    ses = None
    if args.ses:
        import boto3

        ses = read_ses_identity(boto3.client("sesv2", region_name=args.region), args.domain)
    options = DoctorOptions(
        delivery=delivery,
        egress_ips=tuple(args.egress_ip),
        ses=ses,
        dkim_tokens=tuple(args.dkim_token),
        dkim_selectors=tuple(args.dkim_selector),
        inbound=args.inbound,
        expected_mx=args.expect_mx or (ses_inbound_endpoint(args.region) if args.inbound else None),
        return_path_domain=args.return_path,
    )
    report = diagnose(args.domain, options, DnsLookup(nameservers, budget_seconds=args.timeout))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text(), file=sys.stdout)
    return 0 if report.ok else 1
