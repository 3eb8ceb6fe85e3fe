"""Smart-host relay against a loopback upstream that requires STARTTLS and checks XOAUTH2 / PLAIN."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from postroom.core.delivery_results import Outcome
from postroom.deliver.relay_agent import RelayCredentials, RelayDeliveryAgent
from postroom.deliver.smtp_agent import SmtpOptions
from postroom.local.stack import LocalStack, StackConfig
from tests.e2e.test_local_stack import call, wait_for_status
from tests.relay.upstream import token_endpoint, upstream_server

MIME = b"From: orders@shop.example\r\nTo: ann@example.org\r\nSubject: relayed\r\n\r\nvia the smart host\r\n"


def agent(port: int, ca: Path, auth: str, creds: RelayCredentials | None) -> RelayDeliveryAgent:
    options = SmtpOptions(port=port, helo_name="postroom.test", timeout=5, tls_verify=True, require_tls=True)
    return RelayDeliveryAgent(
        "127.0.0.1", options, auth=auth, credentials=(lambda: creds) if creds else None, ca_file=str(ca)
    )


def test_xoauth2_login_with_a_refreshed_token(tmp_path: Path) -> None:
    with upstream_server(tmp_path) as (upstream, port, ca), token_endpoint("1//refresh", upstream) as tokens:
        creds = RelayCredentials(
            username="shop@gmail.example", token_url=tokens.url, client_id="cid", refresh_token="1//refresh"
        )
        with agent(port, ca, "xoauth2", creds) as relay:
            results = relay.deliver("relay", "orders@shop.example", ["ann@example.org", "bob@example.net"], MIME)
        assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED]
        assert results[0].tls is True
        assert upstream.logins == ["ok:xoauth2"]
        assert upstream.received == [("orders@shop.example", ["ann@example.org", "bob@example.net"], MIME)]
        assert tokens.issued == ["ya29.token-1"]


def test_a_refused_token_defers_then_a_fresh_token_delivers(tmp_path: Path) -> None:
    with upstream_server(tmp_path) as (upstream, port, ca), token_endpoint("1//refresh", upstream) as tokens:
        creds = RelayCredentials(username="u", token_url=tokens.url, client_id="cid", refresh_token="1//refresh")
        relay = agent(port, ca, "xoauth2", creds)
        relay.deliver("relay", "orders@shop.example", ["warm@example.org"], MIME)
        relay.close()
        upstream.valid_tokens.clear()  # GIVEN the provider revoked the access token
        results = relay.deliver("relay", "orders@shop.example", ["ann@example.org"], MIME)
        # THEN the message is deferred with the server's 535, not bounced or lost
        assert results[0].outcome is Outcome.DEFERRED
        assert results[0].enhanced_status == "4.7.0"
        assert "535" in results[0].reply
        # WHEN it is retried THEN a fresh token is fetched and the message goes through
        retry = relay.deliver("relay", "orders@shop.example", ["ann@example.org"], MIME)
        relay.close()
        assert retry[0].outcome is Outcome.DELIVERED
        assert tokens.issued == ["ya29.token-1", "ya29.token-2"]


def test_plain_auth_and_wrong_password(tmp_path: Path) -> None:
    with upstream_server(tmp_path) as (upstream, port, ca):
        with agent(port, ca, "plain", RelayCredentials(username="u", password="app-password")) as relay:
            assert relay.deliver("relay", "o@shop.example", ["a@example.org"], MIME)[0].outcome is Outcome.DELIVERED
        with agent(port, ca, "plain", RelayCredentials(username="u", password="wrong")) as relay:
            result = relay.deliver("relay", "o@shop.example", ["a@example.org"], MIME)[0]
        assert result.outcome is Outcome.DEFERRED
        assert "login refused" in result.reply
        assert upstream.logins[0] == "ok:plain"
        assert all(login.startswith("fail:") for login in upstream.logins[1:])
        assert len(upstream.received) == 1


def test_relay_without_starttls_is_never_used_in_clear(tmp_path: Path) -> None:
    with upstream_server(tmp_path, starttls=False) as (upstream, port, ca):
        with agent(port, ca, "plain", RelayCredentials(username="u", password="app-password")) as relay:
            result = relay.deliver("relay", "o@shop.example", ["a@example.org"], MIME)[0]
        assert result.outcome is Outcome.DEFERRED
        assert result.enhanced_status == "4.7.4"
        assert upstream.logins == []


@pytest.mark.e2e
@pytest.mark.parametrize("return_path", ["", "bounces.shop.example"])
def test_relay_delivery_through_the_local_stack_with_an_ssm_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, return_path: str
) -> None:
    with upstream_server(tmp_path) as (upstream, port, ca), token_endpoint("1//refresh", upstream) as tokens:
        for name, value in {
            "POSTROOM_RELAY_HOST": f"127.0.0.1:{port}",
            "POSTROOM_RELAY_AUTH": "xoauth2",
            "POSTROOM_RELAY_SECRET": "/postroom/relay-xoauth2-e2e",
            "POSTROOM_RELAY_CA_FILE": str(ca),
            "POSTROOM_RETRY_BASE_SECONDS": "0",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
        parameters = {"SendingDomains": "shop.example=relay"}
        if return_path:
            parameters |= {"InboundDomains": f"shop.example,{return_path}", "ReturnPathDomain": return_path}
        config = StackConfig(api_port=0, sandbox=False, parameters=parameters)
        with LocalStack(config) as stack:
            secret = {
                "username": "shop@gmail.example",
                "token_url": tokens.url,
                "client_id": "cid",
                "refresh_token": "1//refresh",
            }
            boto3.client("ssm", endpoint_url=stack.aws_endpoint, region_name="us-east-1").put_parameter(
                Name="/postroom/relay-xoauth2-e2e", Value=json.dumps(secret), Type="SecureString"
            )
            status, body = call(
                stack,
                "POST",
                "/v1/messages",
                {"from": "orders@shop.example", "to": "ann@example.org", "subject": "relay e2e", "text": "x"},
            )
            assert status == 202, body
            record = wait_for_status(stack, body["id"], {"delivered"})
            assert record["recipients"][0]["delivery"] == "relay"
            assert record["recipients"][0]["mx_host"] == "127.0.0.1"
            assert len(upstream.received) == 1
            assert upstream.logins == ["ok:xoauth2"]
            # The relay is handed the message's bounce address as MAIL FROM when there is a return path, so the
            # relay's own bounces come back to Postroom; otherwise the From address, as before.
            mail_from = upstream.received[0][0]
            if return_path:
                assert mail_from.startswith(f"bounces+{body['id']}.")
                assert mail_from.endswith(f"@{return_path}")
            else:
                assert mail_from == "orders@shop.example"


def test_relay_without_a_host_is_a_settings_error() -> None:
    from postroom.core.settings import SettingsError, settings_from_env

    env = {"POSTROOM_TABLE": "t", "POSTROOM_BUCKET": "b", "POSTROOM_QUEUE_URL": "q", "POSTROOM_DLQ_URL": "d"}
    with pytest.raises(SettingsError, match="POSTROOM_RELAY_HOST is empty"):
        settings_from_env({**env, "POSTROOM_SENDING_DOMAINS": "shop.example=relay"})
    assert settings_from_env({**env, "POSTROOM_RELAY_HOST": "smtp.gmail.com:587"}).relay_endpoint == (
        "smtp.gmail.com",
        587,
    )
