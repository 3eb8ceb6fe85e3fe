"""The doctor's checks of a sending domain's DNS. Each returns a :class:`Check` that says what is wrong in plain
words and which record to publish.

What is checked depends on how the domain sends:

- **SES**: SES's envelope sender is its own (amazonses.com) unless a custom MAIL FROM domain is set, so DMARC rests
  on DKIM: the Easy DKIM CNAMEs must be published. SPF must include amazonses.com on the custom MAIL FROM domain (and
  it does no harm on the domain itself).
- **Direct SMTP**: the envelope sender is the From address, so the domain's SPF must authorise the address Postroom
  sends from (the NAT gateway's Elastic IP); DKIM is checked for the selectors given. With a return-path domain the
  envelope sender is ``bounces+…@<return-path domain>`` instead, so SPF is checked there.
- Every domain: DMARC; with ``inbound``, MX; and MTA-STS (with TLS-RPT), which protects mail *to* the domain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from postroom.core.settings import DeliveryPath
from postroom.doctor.dkim_keys import rsa_key_bits
from postroom.doctor.lookup import DnsLookup
from postroom.doctor.report import Check, CheckStatus, Fix, Report
from postroom.doctor.spf import SpfError, SpfRecord, SpfResult, check_host, find_spf, mentions

__all__ = ["DoctorOptions", "SesIdentity", "diagnose", "read_ses_identity"]

SES_SPF_INCLUDE = "amazonses.com"
SES_DKIM_SUFFIX = "dkim.amazonses.com"
DKIM_MIN_BITS = 1024  # RFC 8301 §3.2: verifiers must not accept less
DKIM_GOOD_BITS = 2048  # what RFC 8301 asks signers to use
TEST_ADDRESS = "192.0.2.1"  # RFC 5737 TEST-NET-1: evaluates a record's structure without naming a real sender
_DMARC_POLICIES = ("none", "quarantine", "reject")
_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass(frozen=True)
class SesIdentity:
    """What SES says about the domain as a sending identity (``GetEmailIdentity``)."""

    exists: bool
    verified: bool = False
    dkim_status: str | None = None  # SUCCESS, PENDING, FAILED, TEMPORARY_FAILURE, NOT_STARTED
    dkim_origin: str | None = None  # AWS_SES (Easy DKIM), EXTERNAL (BYODKIM), AWS_SES_<region>...
    tokens: tuple[str, ...] = ()  # Easy DKIM: CNAME tokens; BYODKIM: the selector
    mail_from_domain: str | None = None
    error: str | None = None  # SES could not be asked


def read_ses_identity(sesv2: Any, domain: str) -> SesIdentity:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = sesv2.get_email_identity(EmailIdentity=domain)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "NotFoundException":
            return SesIdentity(exists=False)
        return SesIdentity(exists=False, error=f"SES GetEmailIdentity failed: {code}")
    except (BotoCoreError, NotImplementedError) as error:
        return SesIdentity(exists=False, error=f"SES could not be asked: {error}")
    dkim = response.get("DkimAttributes") or {}
    mail_from = (response.get("MailFromAttributes") or {}).get("MailFromDomain") or None
    return SesIdentity(
        exists=True,
        verified=bool(response.get("VerifiedForSendingStatus")),
        dkim_status=dkim.get("Status"),
        dkim_origin=dkim.get("SigningAttributesOrigin"),
        tokens=tuple(dkim.get("Tokens") or ()),
        mail_from_domain=mail_from,
    )


@dataclass(frozen=True)
class DoctorOptions:
    delivery: DeliveryPath = DeliveryPath.SES
    egress_ips: tuple[str, ...] = ()  # where direct SMTP leaves from (the NAT's Elastic IP)
    ses: SesIdentity | None = None  # None: SES was not asked
    dkim_tokens: tuple[str, ...] = ()  # Easy DKIM tokens given by hand
    dkim_selectors: tuple[str, ...] = ()  # selectors of keys published as TXT (BYODKIM, Postroom's own signer)
    inbound: bool = False
    expected_mx: str | None = None
    return_path_domain: str | None = None  # direct SMTP's MAIL FROM domain (ReturnPathDomain), when set


def diagnose(domain: str, options: DoctorOptions, lookup: DnsLookup) -> Report:
    domain = domain.strip().rstrip(".").lower()
    apex = lookup.query(domain, "SOA")
    if apex.nxdomain:
        check = Check("domain", CheckStatus.FAIL, f"{domain} does not exist in the DNS (NXDOMAIN): check the spelling")
        return Report(domain, options.delivery.value, [check])
    checks = [_spf(domain, options, lookup), _dkim(domain, options, lookup), _dmarc(domain, lookup)]
    if options.inbound:
        checks.append(_mx(domain, options, lookup))
    checks.append(_mta_sts(domain, options, lookup))
    return Report(domain, options.delivery.value, checks)


# --- SPF ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SpfPlan:
    """Where SPF is checked for a domain, what it must authorise there, and how bad it is when it does not."""

    target: str  # the MAIL FROM domain receivers check SPF on
    ses: bool
    custom_mail_from: str | None  # SES's custom MAIL FROM domain, when it has one
    return_path: str | None  # direct SMTP's return-path domain, when set
    wanted: tuple[str, ...]  # the terms that authorise Postroom's senders (none: direct SMTP from an unknown address)
    missing_status: CheckStatus  # what a missing authorisation costs
    egress_ips: tuple[str, ...]

    @property
    def who(self) -> str:
        return "Amazon SES" if self.ses else ", ".join(self.egress_ips)


_SpfProblems = list[tuple[CheckStatus, str]]


def _spf(domain: str, options: DoctorOptions, lookup: DnsLookup) -> Check:
    plan = _spf_plan(domain, options)
    try:
        record, _ = find_spf(lookup, plan.target)
    except SpfError as error:
        return _spf_lookup_failed(plan, error)
    details = _spf_context(plan, record)
    if record is None:
        return _spf_absent(plan, details)
    structure, notes = check_host(lookup, TEST_ADDRESS, plan.target)
    if structure in (SpfResult.PERMERROR, SpfResult.TEMPERROR):
        status = CheckStatus.FAIL if structure is SpfResult.PERMERROR else CheckStatus.SKIP
        return Check("spf", status, f"the SPF record cannot be evaluated ({structure}): {notes[0]}", details)
    details.extend(notes)
    problems, missing = _spf_authorisation(plan, lookup, details)
    problems.extend(_spf_policy_problems(record))
    return _spf_verdict(plan, record, problems, missing, details)


def _spf_plan(domain: str, options: DoctorOptions) -> _SpfPlan:
    ses = options.delivery is DeliveryPath.SES
    custom_mail_from = options.ses.mail_from_domain if (ses and options.ses) else None
    return_path = options.return_path_domain if not ses else None
    # With SES's default MAIL FROM, receivers check SPF against amazonses.com, not this domain: a missing include is
    # worth fixing but does not stop DMARC from passing (DKIM carries it). Everywhere else SPF decides.
    missing_status = CheckStatus.WARN if ses and not custom_mail_from else CheckStatus.FAIL
    wanted = (f"include:{SES_SPF_INCLUDE}",) if ses else tuple(f"ip{_version(ip)}:{ip}" for ip in options.egress_ips)
    return _SpfPlan(
        target=custom_mail_from or return_path or domain,
        ses=ses,
        custom_mail_from=custom_mail_from,
        return_path=return_path,
        wanted=wanted,
        missing_status=missing_status,
        egress_ips=options.egress_ips,
    )


def _spf_lookup_failed(plan: _SpfPlan, error: SpfError) -> Check:
    if error.result is SpfResult.TEMPERROR:
        return Check("spf", CheckStatus.SKIP, f"could not be checked: {error.reason}")
    return Check("spf", CheckStatus.FAIL, f"the SPF record of {plan.target} is broken: {error.reason}")


def _spf_context(plan: _SpfPlan, record: SpfRecord | None) -> list[str]:
    """The details every SPF verdict starts with: the record found and why SPF is checked where it is."""
    details = [f"{plan.target} TXT {record.text!r}"] if record else []
    if plan.custom_mail_from:
        details.append(f"SES sends with the custom MAIL FROM domain {plan.custom_mail_from}: SPF is checked there")
    if plan.return_path:
        # DMARC's SPF alignment is relaxed by default: it holds when the two share an organisational domain.
        details.append(
            f"direct SMTP sends with MAIL FROM bounces+…@{plan.return_path} (the return path): SPF is checked there, "
            f"and aligns with From only under the same organisational domain (DKIM aligns regardless)"
        )
    return details


def _spf_absent(plan: _SpfPlan, details: list[str]) -> Check:
    who = "Amazon SES" if plan.ses else "Postroom's sending address"
    fixes = [Fix(plan.target, "TXT", _spf_with(None, list(plan.wanted)))] if plan.wanted else []
    if not plan.wanted:  # direct SMTP from an address the doctor was not told
        details.append(
            f'publish "v=spf1 ip4:<SmtpEgressIp> ~all" at {plan.target}; the address is the stack output SmtpEgressIp '
            "(EnableSmtpVpc=true), or give it with --egress-ip to get the exact record"
        )
    return Check(
        "spf",
        plan.missing_status,
        f"{plan.target} has no SPF record: receivers cannot tell that {who} may send for it",
        details,
        fixes,
    )


def _spf_authorisation(plan: _SpfPlan, lookup: DnsLookup, details: list[str]) -> tuple[_SpfProblems, list[str]]:
    """Whether the record authorises Postroom's senders: the problems, and the terms that would fix them."""
    if plan.ses:
        if mentions(lookup, plan.target, SES_SPF_INCLUDE):
            return [], []
        problem = (plan.missing_status, f"it does not include {SES_SPF_INCLUDE}, so it does not authorise SES")
        return [problem], [plan.wanted[0]]
    if not plan.egress_ips:
        unknown = (
            "the address direct SMTP sends from is unknown, so it cannot be checked: deploy with "
            "EnableSmtpVpc=true (output SmtpEgressIp) or give --egress-ip"
        )
        return [(CheckStatus.WARN, unknown)], []
    return _spf_egress_authorisation(plan, lookup, details)


def _spf_egress_authorisation(plan: _SpfPlan, lookup: DnsLookup, details: list[str]) -> tuple[_SpfProblems, list[str]]:
    problems: _SpfProblems = []
    missing: list[str] = []
    for ip, term in zip(plan.egress_ips, plan.wanted, strict=True):
        result, ip_notes = check_host(lookup, ip, plan.target)
        details.extend(note for note in ip_notes if note not in details)
        if result is SpfResult.PASS:
            details.append(f"mail from {ip} passes SPF")
        else:
            missing.append(term)
            problems.append((CheckStatus.FAIL, f"mail from Postroom's address {ip} gets SPF {result.value}"))
    return problems, missing


def _spf_verdict(
    plan: _SpfPlan, record: SpfRecord, problems: _SpfProblems, missing: list[str], details: list[str]
) -> Check:
    if not problems:
        return Check("spf", CheckStatus.OK, f"the SPF record of {plan.target} authorises {plan.who}", details)
    status = CheckStatus.FAIL if any(s is CheckStatus.FAIL for s, _ in problems) else CheckStatus.WARN
    fixed = _spf_with(record, missing)
    fixes = [Fix(plan.target, "TXT", fixed)] if fixed != record.text else []
    return Check("spf", status, "; ".join(text for _, text in problems), details, fixes)


def _spf_policy_problems(record: SpfRecord) -> list[tuple[CheckStatus, str]]:
    final = record.all_term
    if final is not None and final.qualifier == "+":
        return [(CheckStatus.FAIL, "it ends in +all, which authorises every server on the internet")]
    if final is None and record.redirect is None:
        return [(CheckStatus.WARN, "it has no 'all' term, so other senders get 'neutral'; end it with ~all or -all")]
    if final is not None and final.qualifier == "?":
        return [(CheckStatus.WARN, "it ends in ?all (neutral): end it with ~all or -all")]
    return []


def _spf_with(record: SpfRecord | None, additions: list[str]) -> str:
    """The record with ``additions`` inserted before its ``all`` (or ``redirect=``); a new record if None."""
    if record is None:
        return " ".join(["v=spf1", *additions, "~all"])
    terms = record.text.split()[1:]
    position = next(
        (i for i, t in enumerate(terms) if t.lstrip("+-~?").lower() == "all" or t.lower().startswith("redirect=")),
        len(terms),
    )
    terms[position:position] = [a for a in additions if a not in terms]
    # +all authorises everyone and ?all says nothing: both become ~all (softfail), the usual safe ending.
    terms = ["~all" if t.lower() in ("+all", "all", "?all") else t for t in terms]
    if record.all_term is None and record.redirect is None:
        terms.append("~all")
    return " ".join(["v=spf1", *terms])


def _version(ip: str) -> int:
    return 6 if ":" in ip else 4


# --- DKIM ---------------------------------------------------------------------------------------------------------


def _dkim(domain: str, options: DoctorOptions, lookup: DnsLookup) -> Check:
    ses = options.ses
    tokens = list(options.dkim_tokens)
    selectors = list(options.dkim_selectors)
    details: list[str] = []
    if ses is not None and options.delivery is DeliveryPath.SES:
        if ses.error:
            details.append(ses.error)
        elif not ses.exists:
            return Check(
                "dkim",
                CheckStatus.FAIL,
                f"{domain} is not an SES identity in this region: create it in SES (Verified identities, with Easy "
                "DKIM), then publish the three CNAME records SES shows",
            )
        else:
            external = (ses.dkim_origin or "") == "EXTERNAL"
            (selectors if external else tokens).extend(t for t in ses.tokens if t not in tokens + selectors)
            details.append(f"SES reports DKIM status {ses.dkim_status or 'unknown'} ({ses.dkim_origin or 'no origin'})")
            if not ses.tokens:
                return Check(
                    "dkim",
                    CheckStatus.FAIL,
                    "DKIM is not set up for this SES identity: enable Easy DKIM in SES and publish the CNAME records "
                    "it shows; without DKIM, SES mail fails DMARC",
                    details,
                )
    if not tokens and not selectors:
        hint = (
            "give --ses to read the Easy DKIM tokens from SES, or --dkim-token / --dkim-selector"
            if options.delivery is DeliveryPath.SES
            else "give the selector your DKIM signer uses (--dkim-selector, ?dkim_selector=)"
        )
        return Check("dkim", CheckStatus.SKIP, f"no DKIM selector known, nothing to check: {hint}", details)
    results = [_easy_dkim(domain, token, lookup) for token in tokens]
    results += [_dkim_key(domain, selector, lookup) for selector in selectors]
    worst = _worst([status for status, _, _ in results])
    for _, text, _ in results:
        details.append(text)
    fixes = [fix for _, _, fix in results if fix is not None]
    count = len(results)
    summaries = {
        CheckStatus.OK: f"{count} DKIM record(s) published correctly",
        CheckStatus.WARN: "DKIM works, with a weakness (see details)",
        CheckStatus.FAIL: "DKIM records are missing or wrong: receivers cannot verify the signature, and DMARC fails",
        CheckStatus.SKIP: "DKIM could not be checked (the DNS did not answer)",
    }
    return Check("dkim", worst, summaries[worst], details, fixes)


def _easy_dkim(domain: str, token: str, lookup: DnsLookup) -> tuple[CheckStatus, str, Fix | None]:
    name = f"{token}._domainkey.{domain}"
    target = f"{token}.{SES_DKIM_SUFFIX}"
    fix = Fix(name, "CNAME", target)
    answer = lookup.query(name, "CNAME")
    if answer.failed:
        return CheckStatus.SKIP, f"{name}: {answer.error}", None
    if not answer.records:
        return CheckStatus.FAIL, f"{name} has no CNAME record", fix
    if answer.records[0] != target:
        return CheckStatus.FAIL, f"{name} points to {answer.records[0]}, not to {target}", fix
    return CheckStatus.OK, f"{name} CNAME {target}", None


def _dkim_key(domain: str, selector: str, lookup: DnsLookup) -> tuple[CheckStatus, str, Fix | None]:
    name = f"{selector}._domainkey.{domain}"
    answer = lookup.query(name, "TXT")
    if answer.failed:
        return CheckStatus.SKIP, f"{name}: {answer.error}", None
    keys = [record for record in answer.records if "p=" in record.replace(" ", "")]
    if not keys:
        return CheckStatus.FAIL, f"{name} has no DKIM key record: publish the public key your signer uses", None
    tags = _tags(keys[0])
    if tags.get("v", "DKIM1") != "DKIM1":
        return CheckStatus.FAIL, f"{name}: v={tags['v']} is not DKIM1", None
    key = tags.get("p", "")
    if not key:
        return CheckStatus.FAIL, f"{name}: the key is revoked (empty p=): mail signed with it fails DKIM", None
    if tags.get("k", "rsa").lower() != "rsa":
        return CheckStatus.OK, f"{name}: {tags['k']} key published", None
    try:
        bits = rsa_key_bits(key)
    except ValueError as error:
        return CheckStatus.FAIL, f"{name}: the key cannot be read ({error})", None
    if bits < DKIM_MIN_BITS:
        return CheckStatus.FAIL, f"{name}: {bits}-bit RSA key; receivers reject keys under {DKIM_MIN_BITS} bits", None
    if bits < DKIM_GOOD_BITS:
        return CheckStatus.WARN, f"{name}: {bits}-bit RSA key; rotate to {DKIM_GOOD_BITS} bits (RFC 8301)", None
    return CheckStatus.OK, f"{name}: {bits}-bit RSA key", None


# --- DMARC --------------------------------------------------------------------------------------------------------


def _dmarc(domain: str, lookup: DnsLookup) -> Check:
    name = f"_dmarc.{domain}"
    suggested = Fix(name, "TXT", f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}")
    owner, records, error = _find_dmarc(domain, lookup)
    if error:
        return Check("dmarc", CheckStatus.SKIP, f"could not be checked: {error}")
    if not records:
        return Check(
            "dmarc",
            CheckStatus.FAIL,
            f"{domain} has no DMARC record: Gmail and Yahoo require one from bulk senders, and receivers get no "
            "policy for mail that fails SPF and DKIM; start with p=none and a report address",
            fixes=[suggested],
        )
    if len(records) > 1:
        return Check(
            "dmarc",
            CheckStatus.FAIL,
            f"{owner} has {len(records)} DMARC records; receivers then ignore them all (RFC 7489 §6.6.3): keep one",
            [f"{owner} TXT {r!r}" for r in records],
        )
    tags = _tags(records[0])
    details = [f"_dmarc.{owner} TXT {records[0]!r}"]
    inherited = owner != domain
    if inherited:
        details.append(f"no record at {name}: {domain} follows its organisational domain {owner} (sp= applies)")
    policy = ((tags.get("sp") if inherited and tags.get("sp") else tags.get("p")) or "").lower()
    if policy not in _DMARC_POLICIES:
        return Check(
            "dmarc",
            CheckStatus.FAIL,
            f"the DMARC record has no valid policy (p={tags.get('p', '')!r}): receivers ignore it",
            details,
            [Fix(f"_dmarc.{owner}", "TXT", _dmarc_with(records[0], "none"))],
        )
    if "rua" not in tags:
        details.append("no rua= address: you get no aggregate reports showing who sends mail as this domain")
    if tags.get("pct", "100") != "100":
        details.append(f"pct={tags['pct']}: the policy applies to only that share of failing mail")
    if policy == "none":
        return Check(
            "dmarc",
            CheckStatus.WARN,
            "DMARC policy is p=none (monitoring only): mail failing SPF and DKIM is still delivered; move to "
            "p=quarantine once the reports show all your mail passes",
            details,
            [Fix(f"_dmarc.{owner}", "TXT", _dmarc_with(records[0], "quarantine"))],
        )
    return Check("dmarc", CheckStatus.OK, f"DMARC policy is p={policy}", details)


def _find_dmarc(domain: str, lookup: DnsLookup) -> tuple[str, list[str], str | None]:
    """(owner, records, error): the domain's DMARC records, or its nearest parent's (RFC 7489 §6.6.3's fallback to
    the organisational domain, approximated by walking up to two labels)."""
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        owner = ".".join(labels[start:])
        answer = lookup.query(f"_dmarc.{owner}", "TXT")
        if answer.failed:
            return owner, [], answer.error
        records = [r for r in answer.records if r.replace(" ", "").lower().startswith("v=dmarc1")]
        if records:
            return owner, records, None
    return domain, [], None


def _dmarc_with(record: str, policy: str) -> str:
    tags = _tags(record)
    tags["p"] = policy
    ordered = {"v": "DMARC1", "p": policy, **{k: v for k, v in tags.items() if k not in ("v", "p")}}
    return "; ".join(f"{k}={v}" for k, v in ordered.items())


# --- MX (inbound) -------------------------------------------------------------------------------------------------


def _mx(domain: str, options: DoctorOptions, lookup: DnsLookup) -> Check:
    answer = lookup.query(domain, "MX")
    expected = options.expected_mx
    fixes = [Fix(domain, "MX", f"10 {expected}")] if expected else []
    if answer.failed:
        return Check("mx", CheckStatus.SKIP, f"could not be checked: {answer.error}")
    records = sorted((int(r.split()[0]), r.split()[1]) for r in answer.records)
    if not records:
        return Check(
            "mx",
            CheckStatus.FAIL,
            f"{domain} has no MX record: senders fall back to its A record, if any, which is rarely a mail server",
            fixes=fixes,
        )
    if any(host == "." for _, host in records):
        text = f"{domain} publishes a null MX (RFC 7505): it refuses all mail"
        return Check("mx", CheckStatus.FAIL, text, fixes=fixes)
    details = [f"{domain} MX {preference} {host}" for preference, host in records]
    problems: list[tuple[CheckStatus, str]] = []
    for _, host in records:
        addresses = [lookup.query(host, rdtype) for rdtype in ("A", "AAAA")]
        if any(a.failed for a in addresses) and not any(a.records for a in addresses):
            details.append(f"{host}: address lookup failed")
        elif not any(a.records for a in addresses):
            problems.append((CheckStatus.FAIL, f"MX host {host} has no A or AAAA record"))
    elsewhere = bool(expected) and expected not in {host for _, host in records}
    if elsewhere:
        problems.append((CheckStatus.WARN, f"MX does not point to {expected}, where this stack receives mail"))
    if not problems:
        return Check("mx", CheckStatus.OK, f"mail for {domain} goes to {records[0][1]}", details)
    status = _worst([s for s, _ in problems])
    return Check("mx", status, "; ".join(text for _, text in problems), details, fixes if elsewhere else [])


# --- MTA-STS and TLS-RPT ------------------------------------------------------------------------------------------


def _mta_sts(domain: str, options: DoctorOptions, lookup: DnsLookup) -> Check:
    name = f"_mta-sts.{domain}"
    answer = lookup.query(name, "TXT")
    if answer.failed:
        return Check("mta-sts", CheckStatus.SKIP, f"could not be checked: {answer.error}")
    records = [r for r in answer.records if r.replace(" ", "").startswith("v=STSv1")]
    policy_url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
    if not records:
        if not options.inbound:
            return Check(
                "mta-sts",
                CheckStatus.SKIP,
                "not published; MTA-STS protects mail sent to this domain, so it matters only if the domain receives "
                "mail (check with inbound)",
            )
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        return Check(
            "mta-sts",
            CheckStatus.WARN,
            f"no MTA-STS: senders may deliver to {domain} without TLS, or to a forged MX, without noticing",
            [f"also serve the policy at {policy_url} (mode: enforce, mx: your MX hosts, max_age: 604800)"],
            [Fix(name, "TXT", f"v=STSv1; id={stamp}"), _tlsrpt_fix(domain)],
        )
    if len(records) > 1:
        return Check("mta-sts", CheckStatus.FAIL, f"{name} has {len(records)} records; senders ignore MTA-STS then")
    tags = _tags(records[0])
    details = [f"{name} TXT {records[0]!r}"]
    if not _STS_ID.match(tags.get("id", "")):
        return Check(
            "mta-sts",
            CheckStatus.FAIL,
            "the MTA-STS record's id= must be 1 to 32 letters or digits (RFC 8461 §3.1); senders ignore it",
            details,
        )
    policy_host = f"mta-sts.{domain}"
    if not any(lookup.query(policy_host, rdtype).records for rdtype in ("A", "AAAA", "CNAME")):
        return Check(
            "mta-sts",
            CheckStatus.FAIL,
            f"the policy host {policy_host} does not resolve, so senders cannot fetch the policy: MTA-STS is not in "
            "force",
            details,
        )
    details.append(f"the policy itself ({policy_url}) is not fetched by the doctor")
    tlsrpt = lookup.query(f"_smtp._tls.{domain}", "TXT")
    if not any(r.replace(" ", "").startswith("v=TLSRPTv1") for r in tlsrpt.records):
        return Check(
            "mta-sts",
            CheckStatus.WARN,
            "MTA-STS is published but TLS-RPT is not: you will not hear about failed TLS deliveries",
            details,
            [_tlsrpt_fix(domain)],
        )
    return Check("mta-sts", CheckStatus.OK, f"MTA-STS (id={tags['id']}) and TLS-RPT are published", details)


def _tlsrpt_fix(domain: str) -> Fix:
    return Fix(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:tls-reports@{domain}")


# --- helpers ------------------------------------------------------------------------------------------------------


def _tags(record: str) -> dict[str, str]:
    """``"v=DMARC1; p=none"`` → ``{"v": "DMARC1", "p": "none"}`` (DKIM, DMARC, MTA-STS all use tag=value lists)."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip():
            tags.setdefault(key.strip().lower(), "".join(value.split()) if key.strip() == "p" else value.strip())
    return tags


_ORDER = (CheckStatus.FAIL, CheckStatus.WARN, CheckStatus.SKIP, CheckStatus.OK)


def _worst(statuses: list[CheckStatus]) -> CheckStatus:
    return next((status for status in _ORDER if status in statuses), CheckStatus.OK)
