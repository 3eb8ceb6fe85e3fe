"""The doctor's two doors: ``postroom doctor`` on a terminal, and ``GET /v1/domains/{domain}/doctor`` through the
real send API handler (moto behind it, the loopback DNS server as the stack's resolver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from postroom.cli import main
from postroom.core.auth import Scope
from postroom.doctor.checks import read_ses_identity
from postroom.local.gateway import build_event
from postroom.testing.dns_server import LoopbackDnsServer
from tests.conftest import Stack, create_key, start_stack
from tests.doctor.conftest import EGRESS_IP

SMTP_ZONE = {
    "smtp.example": {"TXT": [f"v=spf1 ip4:{EGRESS_IP} -all"]},
    "_dmarc.smtp.example": {"TXT": ["v=DMARC1; p=quarantine; rua=mailto:d@smtp.example"]},
    "shop.example": {"TXT": ["v=spf1 include:amazonses.com -all"]},
    "_dmarc.shop.example": {"TXT": ["v=DMARC1; p=none"]},
}


def test_the_cli_prints_the_report_and_fails_on_a_failed_check(
    dns: LoopbackDnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    dns.update_zone(SMTP_ZONE)
    nameserver = f"127.0.0.1:{dns.port}"
    # GIVEN a domain whose SPF authorises the egress address  WHEN checked for direct SMTP  THEN exit 0
    code = main(["doctor", "smtp.example", "--delivery", "smtp", "--egress-ip", EGRESS_IP, "--nameserver", nameserver])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0] == "smtp.example (delivery: smtp)"
    assert f"OK   spf      the SPF record of smtp.example authorises {EGRESS_IP}" in out
    # GIVEN the same domain checked for another address  THEN exit 1, and --json gives the same findings as data
    code = main(
        [
            "doctor",
            "smtp.example",
            "--delivery",
            "smtp",
            "--egress-ip",
            "192.0.2.9",
            "--nameserver",
            nameserver,
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["ok"] is False
    spf = report["checks"][0]
    assert spf["status"] == "fail"
    assert spf["fix"] == [
        {"name": "smtp.example", "type": "TXT", "value": f"v=spf1 ip4:{EGRESS_IP} ip4:192.0.2.9 -all"}
    ]
    with pytest.raises(SystemExit, match="not an IP address"):
        main(["doctor", "smtp.example", "--nameserver", "resolver.example"])


def test_ses_identity_is_read_from_get_email_identity() -> None:
    ses = boto3.client("sesv2", region_name="us-east-1")
    with Stubber(ses) as stub:
        stub.add_response(
            "get_email_identity",
            {
                "IdentityType": "DOMAIN",
                "VerifiedForSendingStatus": True,
                "DkimAttributes": {"Status": "PENDING", "SigningAttributesOrigin": "AWS_SES", "Tokens": ["t1", "t2"]},
                "MailFromAttributes": {
                    "MailFromDomain": "bounce.shop.example",
                    "MailFromDomainStatus": "SUCCESS",
                    "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
                },
            },
            {"EmailIdentity": "shop.example"},
        )
        stub.add_client_error("get_email_identity", "NotFoundException", http_status_code=404)
        found = read_ses_identity(ses, "shop.example")
        missing = read_ses_identity(ses, "other.example")
    assert (found.tokens, found.dkim_status, found.mail_from_domain) == (("t1", "t2"), "PENDING", "bounce.shop.example")
    assert (missing.exists, missing.error) == (False, None)


@pytest.fixture
def stack_with_dns(monkeypatch: pytest.MonkeyPatch, dns: LoopbackDnsServer) -> Iterator[Stack]:
    dns.update_zone(SMTP_ZONE)
    with mock_aws():
        yield start_stack(monkeypatch, parameters={"DnsNameservers": f"127.0.0.1:{dns.port}"})


def get(stack: Stack, path: str, query: str = "", key: str | None = None) -> tuple[int, dict[str, Any]]:
    event = build_event(
        method="GET",
        path=path,
        resource="/v1/domains/{domain}/doctor",
        query=query,
        headers=[("Authorization", f"Bearer {key or stack.api_key}")],
        body=b"",
        source_ip="127.0.0.1",
        path_parameters={"domain": path.split("/")[3]},
        stage="api",
    )
    result = stack.send_api.invoke(event)
    return result["statusCode"], json.loads(result["body"])


def test_the_api_checks_the_stacks_own_domains(stack_with_dns: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a stack whose direct-SMTP domain sends from EGRESS_IP
    monkeypatch.setenv("POSTROOM_SMTP_EGRESS_IPS", EGRESS_IP)
    from postroom.wiring.services import reset_services

    reset_services()
    # WHEN its domain is checked with a DKIM selector that is not published
    status, body = get(stack_with_dns, "/v1/domains/smtp.example/doctor", "dkim_selector=s1")
    # THEN 200 with the findings: SPF passes, DKIM fails naming the selector
    assert status == 200, body
    assert (body["domain"], body["delivery"], body["ok"]) == ("smtp.example", "smtp", False)
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["spf"]["status"] == "ok"
    assert checks["dkim"]["status"] == "fail"
    assert checks["dkim"]["details"] == [
        "s1._domainkey.smtp.example has no DKIM key record: publish the public key your signer uses"
    ]
    assert checks["dmarc"]["status"] == "ok"
    # ... and an SES domain is checked against what SES (here moto) says about its DKIM
    status, body = get(stack_with_dns, "/v1/domains/shop.example/doctor", "inbound=true")
    assert status == 200, body
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["dkim"]["status"] == "fail"
    assert [c["name"] for c in body["checks"]] == ["spf", "dkim", "dmarc", "mx", "mta-sts"]
    assert checks["mx"]["fix"] == [
        {"name": "shop.example", "type": "MX", "value": "10 inbound-smtp.us-east-1.amazonaws.com"}
    ]


def test_the_api_refuses_other_domains_and_keys_without_the_scope(stack_with_dns: Stack) -> None:
    status, body = get(stack_with_dns, "/v1/domains/example.org/doctor")
    assert (status, body["error"]["code"], body["error"]["field"]) == (404, "not_found", "domain")
    status, body = get(stack_with_dns, "/v1/domains/not_a_domain/doctor")
    assert (status, body["error"]["code"]) == (422, "validation_error")
    reader = create_key(frozenset({Scope.MESSAGES_READ}))
    status, body = get(stack_with_dns, "/v1/domains/smtp.example/doctor", key=reader)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "domains:read" in body["error"]["message"]
