"""Deliverability settings are checked once, loudly, at cold start; the template wires them with least privilege."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.core.deliverability_settings import TlsLevel
from postroom.core.settings import SettingsError, settings_from_env
from postroom.local import template as tpl

BASE = {
    "POSTROOM_TABLE": "t",
    "POSTROOM_BUCKET": "b",
    "POSTROOM_QUEUE_URL": "q",
    "POSTROOM_DLQ_URL": "d",
    "POSTROOM_SENDING_DOMAINS": "shop.example,news.shop.example=smtp",
}
ROOT = Path(__file__).resolve().parents[2]


def test_deliverability_settings_parse() -> None:
    settings = settings_from_env(
        {
            **BASE,
            "POSTROOM_DKIM_SELECTORS": "shop.example=s2026a, shop.example=e2026a,news.shop.example=mail.2026",
            "POSTROOM_DKIM_KEY_SOURCE": "secretsmanager",
            "POSTROOM_TLS_POLICY": "bank.example=verify,*.gov.example=REQUIRED,*=opportunistic",
            "POSTROOM_MTA_STS": "false",
        }
    )
    assert settings.deliverability.dkim_selectors == {
        "shop.example": ("s2026a", "e2026a"),
        "news.shop.example": ("mail.2026",),
    }
    assert settings.deliverability.dkim_key_source == "secretsmanager"
    assert settings.deliverability.tls_policy == {
        "bank.example": TlsLevel.VERIFY,
        "*.gov.example": TlsLevel.REQUIRED,
        "*": TlsLevel.OPPORTUNISTIC,
    }
    assert settings.deliverability.mta_sts is False


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("POSTROOM_DKIM_SELECTORS", "shop.example", "must be domain=selector"),
        ("POSTROOM_DKIM_SELECTORS", "shop.example=s_1", "must be domain=selector"),
        ("POSTROOM_DKIM_SELECTORS", "shop.example=s1,shop.example=s1", "listed twice"),
        ("POSTROOM_DKIM_SELECTORS", "shpo.example=s1", "not in POSTROOM_SENDING_DOMAINS"),
        ("POSTROOM_DKIM_KEY_SOURCE", "vault", "POSTROOM_DKIM_KEY_SOURCE"),
        ("POSTROOM_DKIM_KEY_PREFIX", "/leading/slash", "POSTROOM_DKIM_KEY_PREFIX"),
        ("POSTROOM_TLS_POLICY", "bank.example=strict", "must be one of opportunistic, required, verify"),
        ("POSTROOM_TLS_POLICY", "bank.example", "must be domain=level"),
        ("POSTROOM_TLS_POLICY", "**.example=verify", "must be domain=level"),
    ],
)
def test_malformed_deliverability_settings_fail_at_cold_start(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_env({**BASE, variable: value})


def test_the_worker_may_read_dkim_keys_only_below_the_prefix() -> None:
    template = tpl.load_template(ROOT / "template.yaml")
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    statements = {
        statement["Sid"]: statement
        for policy in worker["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    }
    ssm, secrets = statements["ReadDkimKeyParameters"], statements["ReadDkimKeySecrets"]
    assert (ssm["Action"], secrets["Action"]) == (["ssm:GetParameter"], ["secretsmanager:GetSecretValue"])
    assert ssm["Resource"]["Fn::Sub"].endswith(":parameter/${DkimKeyPrefix}/*")
    assert secrets["Resource"]["Fn::Sub"].endswith(":secret:${DkimKeyPrefix}/*")
    environment = worker["Environment"]["Variables"]
    assert environment["POSTROOM_DKIM_SELECTORS"] == {"Ref": "DkimSelectors"}
    assert environment["POSTROOM_TLS_POLICY"] == {"Ref": "TlsPolicy"}


def test_a_return_path_domain_must_be_received() -> None:
    # GIVEN a return-path domain that is one of the inbound domains: accepted, normalised
    settings = settings_from_env(
        {
            **BASE,
            "POSTROOM_INBOUND_DOMAINS": "shop.example,bounces.shop.example",
            "POSTROOM_RETURN_PATH_DOMAIN": "Bounces.Shop.Example.",
        }
    )
    assert settings.return_path_domain == "bounces.shop.example"
    # WHEN it is not received (bounces to it would go nowhere) THEN the cold start fails, naming both variables
    with pytest.raises(
        SettingsError, match=r"POSTROOM_RETURN_PATH_DOMAIN bounces\.shop\.example is not in POSTROOM_INBOUND"
    ):
        settings_from_env({**BASE, "POSTROOM_RETURN_PATH_DOMAIN": "bounces.shop.example"})
    with pytest.raises(SettingsError, match="POSTROOM_RETURN_PATH_DOMAIN: Value error, not a domain"):
        settings_from_env({**BASE, "POSTROOM_RETURN_PATH_DOMAIN": "bounces@shop.example"})
    # AND empty (the template's default) keeps today's behaviour
    assert settings_from_env(BASE).return_path_domain == ""


def test_the_template_gives_the_return_path_to_every_function_and_the_inbound_function_its_key() -> None:
    template = tpl.load_template(ROOT / "template.yaml")
    assert template["Parameters"]["ReturnPathDomain"]["Default"] == ""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POSTROOM_RETURN_PATH_DOMAIN"] == {"Ref": "ReturnPathDomain"}
    inbound = template["Resources"]["InboundFunction"]["Properties"]
    assert inbound["Environment"]["Variables"]["POSTROOM_SIGNING_SECRET_ARN"] == {"Ref": "LinkSigningSecret"}
    statements = [s for p in inbound["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])]
    reads = [s for s in statements if s.get("Action") == ["secretsmanager:GetSecretValue"]]
    assert [s["Resource"] for s in reads] == [{"Ref": "LinkSigningSecret"}]
