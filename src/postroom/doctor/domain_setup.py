"""Sending domains added through the API: the exact DNS records to publish for one, and whether the DNS has them.

What a domain needs depends on how it sends:

- **Direct SMTP**: Postroom signs with its own keys, RSA 2048 and Ed25519 (dkimpy signs with both; RFC 8463 asks for
  an RSA signature beside Ed25519 until receivers all know it), so one DKIM TXT per key; SPF at the envelope domain
  (the return path when one is given, otherwise the domain) covering the addresses direct SMTP leaves from; and for a
  return path, the MX that brings its bounces back to Postroom's inbound (SES).
- **SES**: the Easy DKIM CNAMEs SES answers with; with a custom MAIL FROM domain, its MX (SES's feedback endpoint)
  and an SPF record including amazonses.com.
- Both: a DMARC record, suggested (``required`` false) - its policy is the domain owner's call.

Each record is then checked on its own, by the doctor's own means (its DNS lookup, its SPF evaluator), and marked
``published``, ``missing``, ``wrong`` (the DNS holds something else there) or ``unchecked`` (the DNS did not answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from postroom.core.domain_registry import DomainRecord
from postroom.deliver.dkim import DkimKey
from postroom.doctor.checks import SES_DKIM_SUFFIX, SES_SPF_INCLUDE
from postroom.doctor.lookup import DnsLookup
from postroom.doctor.spf import SpfError, SpfResult, check_host, find_spf, mentions

__all__ = ["check_records", "dmarc_record", "ses_records", "smtp_records"]

RETURN_PATH_MX_PREFERENCE = 10


def _spf_value(terms: Iterable[str]) -> str:
    return " ".join(["v=spf1", *terms, "~all"])


def _ip_terms(egress_ips: Iterable[str]) -> list[str]:
    return [f"ip{6 if ':' in ip else 4}:{ip}" for ip in egress_ips]


def smtp_records(
    domain: str,
    keys: Iterable[DkimKey],
    *,
    egress_ips: tuple[str, ...],
    return_path: str | None,
    inbound_mx: str | None,
) -> list[DomainRecord]:
    records = [DomainRecord(key.dns_name, "TXT", key.dns_value, "dkim") for key in keys]
    envelope_domain = return_path or domain
    # Without the egress address the exact SPF record cannot be written; it is still listed, as a template to fill
    # in, but it cannot hold the domain back (the doctor's SPF check says what is unknown).
    terms = _ip_terms(egress_ips) or ["ip4:<SmtpEgressIp>"]
    records.append(
        DomainRecord(envelope_domain, "TXT", _spf_value(terms), "spf", required=bool(egress_ips)),
    )
    if return_path and inbound_mx:
        records.append(
            DomainRecord(return_path, "MX", f"{RETURN_PATH_MX_PREFERENCE} {inbound_mx}", "return-path"),
        )
    records.append(dmarc_record(domain))
    return records


def ses_records(domain: str, tokens: Iterable[str], *, mail_from: str | None, region: str) -> list[DomainRecord]:
    records = [
        DomainRecord(f"{token}._domainkey.{domain}", "CNAME", f"{token}.{SES_DKIM_SUFFIX}", "dkim") for token in tokens
    ]
    if mail_from:
        feedback = f"feedback-smtp.{region}.amazonses.com"  # SES's custom MAIL FROM endpoint for the region
        records.append(DomainRecord(mail_from, "MX", f"{RETURN_PATH_MX_PREFERENCE} {feedback}", "mail-from"))
        records.append(DomainRecord(mail_from, "TXT", _spf_value([f"include:{SES_SPF_INCLUDE}"]), "spf"))
    records.append(dmarc_record(domain))
    return records


def dmarc_record(domain: str) -> DomainRecord:
    return DomainRecord(
        f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}", "dmarc", required=False
    )


def check_records(records: Iterable[DomainRecord], lookup: DnsLookup) -> list[DomainRecord]:
    return [_check(record, lookup) for record in records]


def _check(record: DomainRecord, lookup: DnsLookup) -> DomainRecord:
    if record.purpose == "spf":
        return _check_spf(record, lookup)
    if record.purpose == "dmarc":
        return _check_present(record, lookup, lambda text: text.replace(" ", "").lower().startswith("v=dmarc1"))
    if record.type == "TXT":  # a DKIM key: the p= published must be Postroom's
        wanted = _tag(record.value, "p")
        return _check_present(
            record, lookup, lambda text: "p=" in text.replace(" ", ""), lambda text: _tag(text, "p") == wanted
        )
    if record.type == "CNAME":
        target = record.value.rstrip(".").lower()
        return _check_present(record, lookup, lambda _: True, lambda t: t.rstrip(".").lower() == target)
    if record.type == "MX":
        host = record.value.split()[-1].rstrip(".").lower()
        return _check_present(record, lookup, lambda _: True, lambda t: t.split()[-1].rstrip(".").lower() == host)
    return record


def _check_present(
    record: DomainRecord,
    lookup: DnsLookup,
    relevant: Callable[[str], bool],
    right: Callable[[str], bool] | None = None,
) -> DomainRecord:
    """``relevant`` picks the records that are about this (a TXT name holds other texts too); ``right`` says whether
    one of them is the value Postroom needs."""
    answer = lookup.query(record.name, record.type)
    if answer.failed:
        return replace(record, status="unchecked", found=(answer.error or "",))
    found = tuple(text for text in answer.records if relevant(text))
    if not found:
        return replace(record, status="missing", found=())
    if right is not None and not any(right(text) for text in found):
        return replace(record, status="wrong", found=found)
    return replace(record, status="published", found=())


def _check_spf(record: DomainRecord, lookup: DnsLookup) -> DomainRecord:
    try:
        published, _ = find_spf(lookup, record.name)
    except SpfError as error:
        status = "unchecked" if error.result is SpfResult.TEMPERROR else "wrong"
        return replace(record, status=status, found=(error.reason,))
    if published is None:
        return replace(record, status="missing", found=())
    terms = record.value.split()[1:-1]
    ips = [t.split(":", 1)[1] for t in terms if t.startswith(("ip4:", "ip6:")) and "<" not in t]
    includes = [t.split(":", 1)[1] for t in terms if t.startswith("include:")]
    # The domain's own record may say more than Postroom's (its other senders): what counts is that it authorises
    # Postroom, as a receiver would evaluate it.
    authorised = all(check_host(lookup, ip, record.name)[0] is SpfResult.PASS for ip in ips) and all(
        mentions(lookup, record.name, include) for include in includes
    )
    return replace(record, status="published" if authorised else "wrong", found=(published.text,))


def _tag(text: str, name: str) -> str:
    for part in text.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return "".join(value.split())
    return ""
