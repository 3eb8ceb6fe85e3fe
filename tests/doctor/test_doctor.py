"""The domain doctor against a real DNS server on loopback: a well-configured domain passes, and each misconfiguration
is named in plain words with the record to publish."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postroom.core.settings import DeliveryPath
from postroom.doctor.checks import DoctorOptions, SesIdentity, diagnose
from postroom.doctor.lookup import DnsLookup
from postroom.doctor.report import Check, CheckStatus, Fix, Report
from postroom.testing.dns_server import LoopbackDnsServer
from tests.doctor.conftest import EGRESS_IP

TOKENS = ("tok1aaaa", "tok2bbbb", "tok3cccc")
SES_IDENTITY = SesIdentity(exists=True, verified=True, dkim_status="SUCCESS", dkim_origin="AWS_SES", tokens=TOKENS)
INBOUND_MX = "inbound-smtp.eu-west-1.amazonaws.com"

Doctor = Callable[..., Report]


def check(report: Report, name: str) -> Check:
    (found,) = [c for c in report.checks if c.name == name]
    return found


def good_ses_zone(domain: str) -> dict[str, dict[str, list]]:
    zone: dict[str, dict[str, list]] = {
        domain: {"TXT": ["v=spf1 include:amazonses.com -all"], "MX": [(10, INBOUND_MX)]},
        INBOUND_MX: {"A": ["127.0.0.1"]},
        f"_dmarc.{domain}": {"TXT": [f"v=DMARC1; p=reject; rua=mailto:dmarc@{domain}"]},
        f"_mta-sts.{domain}": {"TXT": ["v=STSv1; id=20240501T1"]},
        f"mta-sts.{domain}": {"A": ["127.0.0.1"]},
        f"_smtp._tls.{domain}": {"TXT": [f"v=TLSRPTv1; rua=mailto:tls@{domain}"]},
    }
    for token in TOKENS:
        zone[f"{token}._domainkey.{domain}"] = {"CNAME": [f"{token}.dkim.amazonses.com."]}
    return zone


def test_a_well_configured_ses_domain_passes_every_check(doctor: Doctor) -> None:
    # GIVEN a domain with SPF for SES, the three Easy DKIM CNAMEs, DMARC p=reject, MX to SES, MTA-STS and TLS-RPT
    # WHEN the doctor checks it as an SES sending domain that also receives mail
    report = doctor(
        good_ses_zone("good.example"),
        "good.example",
        ses=SES_IDENTITY,
        inbound=True,
        expected_mx=INBOUND_MX,
    )
    # THEN every check passes and nothing needs publishing
    assert [(c.name, c.status) for c in report.checks] == [
        ("spf", CheckStatus.OK),
        ("dkim", CheckStatus.OK),
        ("dmarc", CheckStatus.OK),
        ("mx", CheckStatus.OK),
        ("mta-sts", CheckStatus.OK),
    ]
    assert report.ok
    assert all(not c.fixes for c in report.checks)
    assert check(report, "dkim").summary == "3 DKIM record(s) published correctly"
    assert report.to_text().endswith("all checks passed")


def test_a_misconfigured_ses_domain_is_explained_with_the_records_to_publish(doctor: Doctor) -> None:
    # GIVEN a domain whose SPF forgets SES, one DKIM CNAME missing and one pointing elsewhere, no DMARC, MX elsewhere
    zone = {
        "broken.example": {"TXT": ["v=spf1 mx ?all", "site-verification=abc"], "MX": [(10, "mx.broken.example")]},
        "mx.broken.example": {"A": ["127.0.0.1"]},
        "tok2bbbb._domainkey.broken.example": {"CNAME": ["tok2bbbb.dkim.example.net."]},
        "tok3cccc._domainkey.broken.example": {"CNAME": ["tok3cccc.dkim.amazonses.com."]},
    }
    # WHEN the doctor checks it
    report = doctor(zone, "broken.example", ses=SES_IDENTITY, inbound=True, expected_mx=INBOUND_MX)
    # THEN it fails, and each problem is named with the record that fixes it
    assert not report.ok
    spf = check(report, "spf")
    assert spf.status is CheckStatus.WARN  # SES's default MAIL FROM is amazonses.com: DMARC rests on DKIM
    assert "does not include amazonses.com" in spf.summary
    assert "ends in ?all" in spf.summary
    assert spf.fixes == [Fix("broken.example", "TXT", "v=spf1 mx include:amazonses.com ~all")]
    dkim = check(report, "dkim")
    assert dkim.status is CheckStatus.FAIL
    assert "tok1aaaa._domainkey.broken.example has no CNAME record" in dkim.details
    assert (
        "tok2bbbb._domainkey.broken.example points to tok2bbbb.dkim.example.net, not to tok2bbbb.dkim.amazonses.com"
        in dkim.details
    )
    assert dkim.fixes == [
        Fix("tok1aaaa._domainkey.broken.example", "CNAME", "tok1aaaa.dkim.amazonses.com"),
        Fix("tok2bbbb._domainkey.broken.example", "CNAME", "tok2bbbb.dkim.amazonses.com"),
    ]
    dmarc = check(report, "dmarc")
    assert dmarc.status is CheckStatus.FAIL
    assert "has no DMARC record" in dmarc.summary
    assert dmarc.fixes == [
        Fix("_dmarc.broken.example", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc-reports@broken.example")
    ]
    mx = check(report, "mx")
    assert (mx.status, mx.fixes) == (CheckStatus.WARN, [Fix("broken.example", "MX", f"10 {INBOUND_MX}")])
    mta_sts = check(report, "mta-sts")
    assert mta_sts.status is CheckStatus.WARN
    assert [f.name for f in mta_sts.fixes] == ["_mta-sts.broken.example", "_smtp._tls.broken.example"]
    # ... and the text report shows them as zone-file lines
    text = report.to_text()
    assert "publish  tok1aaaa._domainkey.broken.example. CNAME tok1aaaa.dkim.amazonses.com" in text
    assert 'publish  _dmarc.broken.example. TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@broken.example"' in text
    assert text.endswith("2 failed, 3 warning(s)")


def test_ses_identity_problems_come_before_dns(doctor: Doctor) -> None:
    zone = good_ses_zone("new.example")
    missing = doctor(zone, "new.example", ses=SesIdentity(exists=False))
    assert check(missing, "dkim").status is CheckStatus.FAIL
    assert "is not an SES identity in this region" in check(missing, "dkim").summary
    no_dkim = doctor(zone, "new.example", ses=SesIdentity(exists=True, dkim_status="NOT_STARTED"))
    assert "DKIM is not set up for this SES identity" in check(no_dkim, "dkim").summary


def test_a_custom_mail_from_domain_must_authorise_ses(doctor: Doctor) -> None:
    # GIVEN SES sending with MAIL FROM bounce.shop.example, whose SPF does not include amazonses.com
    zone = {**good_ses_zone("shop.example"), "bounce.shop.example": {"TXT": ["v=spf1 -all"]}}
    identity = SesIdentity(exists=True, dkim_origin="AWS_SES", tokens=TOKENS, mail_from_domain="bounce.shop.example")
    # WHEN checked  THEN SPF is checked on the MAIL FROM domain, and now it decides: a failure
    spf = check(doctor(zone, "shop.example", ses=identity), "spf")
    assert spf.status is CheckStatus.FAIL
    assert spf.fixes == [Fix("bounce.shop.example", "TXT", "v=spf1 include:amazonses.com -all")]


def test_direct_smtp_needs_spf_to_authorise_the_egress_address(doctor: Doctor) -> None:
    # GIVEN one domain that authorises the NAT's address through an include, and one that does not
    zone = {
        "ok.example": {"TXT": ["v=spf1 mx include:_spf.ok.example -all"]},
        "_spf.ok.example": {"TXT": ["v=spf1 ip4:203.0.113.0/24 -all"]},
        "wrong.example": {"TXT": ["v=spf1 ip4:198.51.100.1 ~all"]},
    }
    options = {"delivery": DeliveryPath.SMTP, "egress_ips": (EGRESS_IP,)}
    # WHEN both are checked for direct SMTP
    good = check(doctor(zone, "ok.example", **options), "spf")
    bad = check(doctor(zone, "wrong.example", **options), "spf")
    # THEN the first passes SPF for the address, the second fails with the term to add before ~all
    assert good.status is CheckStatus.OK
    assert f"mail from {EGRESS_IP} passes SPF" in good.details
    assert bad.status is CheckStatus.FAIL
    assert bad.summary == f"mail from Postroom's address {EGRESS_IP} gets SPF softfail"
    assert bad.fixes == [Fix("wrong.example", "TXT", f"v=spf1 ip4:198.51.100.1 ip4:{EGRESS_IP} ~all")]
    # ... and without a known egress address the doctor says it cannot tell
    unknown = check(doctor(zone, "ok.example", delivery=DeliveryPath.SMTP), "spf")
    assert unknown.status is CheckStatus.WARN
    assert "EnableSmtpVpc=true" in unknown.summary


def test_with_a_return_path_spf_is_checked_at_the_return_path_domain(doctor: Doctor) -> None:
    # GIVEN a sending domain without SPF for the NAT's address, and a return-path domain that has it
    zone = {
        "shop.example": {"TXT": ["v=spf1 include:amazonses.com -all"]},
        "bounces.shop.example": {"TXT": ["v=spf1 ip4:198.51.100.1 ~all"]},
    }
    options = {"delivery": DeliveryPath.SMTP, "egress_ips": (EGRESS_IP,), "return_path_domain": "bounces.shop.example"}
    # WHEN direct SMTP is checked with that return path
    spf = check(doctor(zone, "shop.example", **options), "spf")
    # THEN SPF is judged where MAIL FROM is, and the fix goes there
    assert spf.status is CheckStatus.FAIL
    assert spf.fixes == [Fix("bounces.shop.example", "TXT", f"v=spf1 ip4:198.51.100.1 ip4:{EGRESS_IP} ~all")]
    assert any("the return path" in line for line in spf.details)
    # AND once it authorises the address, SPF passes though the sending domain's own record does not name it
    zone["bounces.shop.example"] = {"TXT": [f"v=spf1 ip4:{EGRESS_IP} -all"]}
    assert check(doctor(zone, "shop.example", **options), "spf").status is CheckStatus.OK


@pytest.mark.parametrize(
    ("records", "extra", "status", "phrase"),
    [
        (["v=spf1 include:amazonses.com -all", "v=spf1 -all"], {}, CheckStatus.FAIL, "publishes 2 SPF records"),
        (["v=spf1 include:amazonses.com +all"], {}, CheckStatus.FAIL, "authorises every server on the internet"),
        (["v=spf1 include:amazonses.com"], {}, CheckStatus.WARN, "has no 'all' term"),
        (["v=spf1 include:amazonses.com foo:bar -all"], {}, CheckStatus.FAIL, "unknown mechanism 'foo:bar'"),
        (
            ["v=spf1 redirect=_spf.spf.example"],
            {"_spf.spf.example": {"TXT": ["v=spf1 include:amazonses.com -all"]}},
            CheckStatus.OK,
            "authorises Amazon SES",
        ),
        (["v=spf1 include:gone.spf.example include:amazonses.com -all"], {}, CheckStatus.FAIL, "has no usable SPF"),
        (
            ["v=spf1 include:l1.spf.example include:amazonses.com -all"],
            {f"l{i}.spf.example": {"TXT": [f"v=spf1 a include:l{i + 1}.spf.example -all"]} for i in range(1, 12)},
            CheckStatus.FAIL,
            "more than 10 DNS-querying terms",
        ),
    ],
)
def test_spf_record_problems(doctor: Doctor, records: list[str], extra: dict, status: CheckStatus, phrase: str) -> None:
    spf = check(doctor({"spf.example": {"TXT": records}, **extra}, "spf.example"), "spf")
    assert spf.status is status
    assert phrase in spf.summary


def test_dkim_keys_published_under_selectors_are_sized(doctor: Doctor, keys: dict[int, str]) -> None:
    # GIVEN keys of 2048, 1024 and 512 bits, a revoked key, and a selector with nothing published
    zone = {
        "keys.example": {"TXT": ["v=spf1 -all"]},
        "big._domainkey.keys.example": {"TXT": [f"v=DKIM1; k=rsa; p={keys[2048]}"]},
        "old._domainkey.keys.example": {"TXT": [f"v=DKIM1; k=rsa; p={keys[1024]}"]},
        "tiny._domainkey.keys.example": {"TXT": [f"v=DKIM1; p={keys[512]}"]},
        "gone._domainkey.keys.example": {"TXT": ["v=DKIM1; k=rsa; p="]},
    }

    def dkim(selector: str) -> Check:
        return check(doctor(zone, "keys.example", delivery=DeliveryPath.SMTP, dkim_selectors=(selector,)), "dkim")

    # WHEN each selector is checked  THEN the verdict follows RFC 8301's key sizes
    assert dkim("big").status is CheckStatus.OK
    assert dkim("big").details == ["big._domainkey.keys.example: 2048-bit RSA key"]
    assert dkim("old").status is CheckStatus.WARN
    assert "1024-bit RSA key; rotate to 2048 bits" in dkim("old").details[0]
    assert dkim("tiny").status is CheckStatus.FAIL
    assert "512-bit RSA key; receivers reject keys under 1024 bits" in dkim("tiny").details[0]
    assert "the key is revoked (empty p=)" in dkim("gone").details[0]
    assert "has no DKIM key record" in dkim("absent").details[0]
    # ... and with no selector at all there is nothing to check, which the doctor says
    skipped = check(doctor(zone, "keys.example", delivery=DeliveryPath.SMTP), "dkim")
    assert (skipped.status, "--dkim-selector" in skipped.summary) == (CheckStatus.SKIP, True)


def test_dmarc_policy_and_inheritance(doctor: Doctor) -> None:
    zone = {
        "org.example": {"TXT": ["v=spf1 -all"]},
        "_dmarc.org.example": {"TXT": ["v=DMARC1; p=reject; sp=none; rua=mailto:d@org.example"]},
        "mail.org.example": {"TXT": ["v=spf1 -all"]},
        "monitor.example": {"TXT": ["v=spf1 -all"]},
        "_dmarc.monitor.example": {"TXT": ["v=DMARC1; p=none; rua=mailto:d@monitor.example; pct=50"]},
        "twice.example": {"TXT": ["v=spf1 -all"]},
        "_dmarc.twice.example": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]},
    }
    # GIVEN a subdomain without its own record: the organisational domain's sp= applies to it
    inherited = check(doctor(zone, "mail.org.example"), "dmarc")
    assert inherited.status is CheckStatus.WARN
    assert any("follows its organisational domain org.example" in d for d in inherited.details)
    assert inherited.fixes == [
        Fix("_dmarc.org.example", "TXT", "v=DMARC1; p=quarantine; sp=none; rua=mailto:d@org.example")
    ]
    assert check(doctor(zone, "org.example"), "dmarc").status is CheckStatus.OK
    monitor = check(doctor(zone, "monitor.example"), "dmarc")
    assert "p=none (monitoring only)" in monitor.summary
    assert "pct=50: the policy applies to only that share of failing mail" in monitor.details
    twice = check(doctor(zone, "twice.example"), "dmarc")
    assert (twice.status, "has 2 DMARC records" in twice.summary) == (CheckStatus.FAIL, True)


def test_inbound_mx_and_mta_sts_problems(doctor: Doctor) -> None:
    zone = {
        "null.example": {"MX": [(0, ".")], "TXT": ["v=spf1 -all"]},
        "dangling.example": {"MX": [(10, "mx.nowhere.example")], "TXT": ["v=spf1 -all"]},
        "_mta-sts.dangling.example": {"TXT": ["v=STSv1; id=2024"]},
        "badid.example": {"MX": [(10, "mx.badid.example")]},
        "mx.badid.example": {"A": ["127.0.0.1"]},
        "_mta-sts.badid.example": {"TXT": ["v=STSv1; id=2024-05-01"]},
        "noreport.example": {"MX": [(10, "mx.badid.example")]},
        "_mta-sts.noreport.example": {"TXT": ["v=STSv1; id=1"]},
        "mta-sts.noreport.example": {"CNAME": ["pages.example.net."]},
    }
    null = doctor(zone, "null.example", inbound=True)
    assert "publishes a null MX" in check(null, "mx").summary
    dangling = doctor(zone, "dangling.example", inbound=True)
    assert check(dangling, "mx").summary == "MX host mx.nowhere.example has no A or AAAA record"
    assert "the policy host mta-sts.dangling.example does not resolve" in check(dangling, "mta-sts").summary
    assert "id= must be 1 to 32 letters or digits" in check(doctor(zone, "badid.example"), "mta-sts").summary
    noreport = check(doctor(zone, "noreport.example", inbound=True), "mta-sts")
    assert (noreport.status, noreport.fixes[0].name) == (CheckStatus.WARN, "_smtp._tls.noreport.example")


def test_a_dns_failure_is_not_a_verdict(doctor: Doctor, dns: LoopbackDnsServer) -> None:
    # GIVEN a domain whose DMARC name answers SERVFAIL
    zone = {**good_ses_zone("flaky.example"), "_dmarc.flaky.example": {"SERVFAIL": True}}
    # WHEN checked  THEN DMARC is reported as not checkable, not as missing
    dmarc = check(doctor(zone, "flaky.example", ses=SES_IDENTITY), "dmarc")
    assert dmarc.status is CheckStatus.SKIP
    assert "could not be checked" in dmarc.summary
    # ... and a diagnosis whose time budget is spent says so instead of guessing
    lookup = DnsLookup([dns.nameserver], budget_seconds=0)
    spent = diagnose("flaky.example", DoctorOptions(), lookup)
    assert {c.status for c in spent.checks} == {CheckStatus.SKIP}
    assert "time budget ran out" in check(spent, "spf").summary


def test_a_domain_that_does_not_exist_is_said_so(doctor: Doctor) -> None:
    report = doctor({}, "typo.example")
    assert [(c.name, c.status) for c in report.checks] == [("domain", CheckStatus.FAIL)]
    assert "does not exist in the DNS" in report.checks[0].summary


def test_a_missing_spf_record_for_direct_smtp_says_what_to_publish_even_without_the_address(doctor: Doctor) -> None:
    spf = check(
        doctor({"bare.example": {"MX": [(10, "mx.bare.example")]}}, "bare.example", delivery=DeliveryPath.SMTP), "spf"
    )
    assert spf.status is CheckStatus.FAIL
    assert spf.fixes == []
    assert spf.details[0].startswith('publish "v=spf1 ip4:<SmtpEgressIp> ~all" at bare.example')
    with_address = check(
        doctor({}, "bare.example", delivery=DeliveryPath.SMTP, egress_ips=(EGRESS_IP, "2001:db8::25")), "spf"
    )
    assert with_address.fixes == [Fix("bare.example", "TXT", f"v=spf1 ip4:{EGRESS_IP} ip6:2001:db8::25 ~all")]
