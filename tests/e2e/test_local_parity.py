"""The local stack answers as the deployed stack does where API Gateway, Lambda or the bridge answer by themselves:
unmapped methods and paths, bodies over Lambda's and API Gateway's caps, a JSON-suffixed media type, and one
failed-login lockout for SMTP submission, IMAP and POP3 (issue 15, item 12).

API Gateway's own answers are ``{"message": ...}`` named in ``x-amzn-ErrorType``, since no Postroom code runs for them
(see ``postroom.local.gateway``); everything a Postroom function answers is ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import http.client
import imaplib
import json
import os
import poplib
import smtplib
import socket
from collections.abc import Iterator

import boto3
import pytest

from postroom.api.gate import screen
from postroom.cli import main
from postroom.commerce.signatures import sign
from postroom.core.errors import UnsupportedMediaTypeError
from postroom.local.gateway import API_GATEWAY_MAX_BODY, build_event
from postroom.local.handlers import LAMBDA_MAX_SYNC_PAYLOAD
from postroom.local.stack import LocalStack, StackConfig
from postroom.protocols.submission.smtp_listener import FAILED_LOGINS_ALLOWED
from postroom.wiring.services import reset_services, services
from postroom.wiring.worker_batch import reset_resolver
from tests.conftest import clean_aws_env

pytestmark = pytest.mark.e2e

SECRET = "parity-webhook-secret"
ADDRESS = "support@shop.example"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack for the module (starting one costs 15-20 s under load): no test here reads another's data. The
    webhook test alone stashes under ``hooks/``, only the lockout test logs in to IMAP, SMTP or POP3."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_aws_env(monkeypatch)
        reset_services()
        reset_resolver()
        monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
        config = StackConfig(
            api_port=0,
            outbox=tmp_path_factory.mktemp("outbox"),
            submission_port=0,
            imap_port=0,
            pop3_port=0,
            parameters={"SendingDomains": "shop.example", "InboundDomains": "shop.example"},
        )
        with LocalStack(config) as stack:
            yield stack


@pytest.fixture(autouse=True)
def _clean_aws_env(local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``local`` cleaned the environment once for this module and then set the
    stack's settings there, which its pollers and handlers read between and during tests."""


def request(
    stack: LocalStack, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = stack.gateway.server_address[:2] if stack.gateway else ("", 0)
    connection = http.client.HTTPConnection(str(host), int(port), timeout=30)
    try:
        connection.request(
            method, path, body=body, headers={"Authorization": f"Bearer {stack.api_key}"} | (headers or {})
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_gateway_answer(
    answer: tuple[int, dict[str, str], bytes], status: int, error_type: str, message: str
) -> None:
    code, headers, body = answer
    assert code == status, answer
    assert headers["x-amzn-errortype"] == error_type
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": message}


def test_a_method_or_path_the_template_does_not_map_is_api_gateways_403(local: LocalStack) -> None:
    # GIVEN methods API Gateway has no mapping for: ones the stdlib server had no handler for (TRACE, a made-up
    # token), HEAD on a GET-only route, a method another route of the same path has, and an undeclared path
    unmapped = [("TRACE", "/v1/messages"), ("FROB", "/v1/me"), ("DELETE", "/v1/messages"), ("GET", "/v2/nothing")]
    for method, path in unmapped:
        # WHEN each is requested  THEN API Gateway's own 403, not a 501 HTML page or a Postroom 404
        answer = request(local, method, path)
        assert_gateway_answer(answer, 403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    status, headers, body = request(local, "HEAD", "/v1/me")
    assert (status, headers["x-amzn-errortype"], body) == (403, "MissingAuthenticationTokenException", b"")
    # and the mapped method on the same path still reaches the function
    status, _, body = request(local, "GET", "/v1/me")
    assert status == 200, body


def test_a_webhook_over_lambdas_invocation_cap_never_reaches_the_function(local: LocalStack) -> None:
    # GIVEN a configured Shopify store, and an order webhook correctly signed with its secret
    command = ["stores", "add", "parity-shop", "--platform", "shopify", "--secret", SECRET, "--shop-name", "Parity"]
    command += ["--from", "Parity <orders@shop.example>", "--table", os.environ["POSTROOM_TABLE"]]
    command += ["--secret-prefix", os.environ["POSTROOM_STORE_SECRET_PREFIX"]]
    assert main(command) == 0
    huge = json.dumps({"id": 1, "note": "x" * (9 * 1024 * 1024)}).encode()  # 9 MB: under API Gateway's 10 MB
    assert LAMBDA_MAX_SYNC_PAYLOAD < len(huge) < API_GATEWAY_MAX_BODY

    def deliver(body: bytes, delivery_id: str) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": sign(body, SECRET),
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Webhook-Id": delivery_id,
        }
        return request(local, "POST", "/v1/hooks/shopify/parity-shop", body, headers)

    # WHEN it is delivered  THEN API Gateway's 413, because Lambda refuses an event over 6 MB
    assert_gateway_answer(deliver(huge, "d-huge"), 413, "BadRequestException", "Request Too Long")
    # and nothing of it was stashed or queued (a 200 would have told Shopify it was taken)
    bucket = os.environ["POSTROOM_BUCKET"]
    assert boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="hooks/").get("KeyCount") == 0
    # while a webhook of ordinary size from the same store is taken
    status, _, body = deliver(json.dumps({"id": 2, "note": "small"}).encode(), "d-small")
    assert status == 200, body
    assert json.loads(body)["status"] == "queued"


def test_bodies_over_the_caps_get_api_gateways_413_on_the_send_api_too(local: LocalStack) -> None:
    # GIVEN a 7 MB JSON body: under API Gateway's 10 MB, over Lambda's 6 MB invocation payload
    body = json.dumps({"from": "orders@shop.example", "to": ["a@example.org"], "text": "x" * (7 * 1024 * 1024)})
    # WHEN it is sent  THEN the gateway answers, as on AWS
    answer = request(local, "POST", "/v1/messages", body.encode(), {"Content-Type": "application/json"})
    assert_gateway_answer(answer, 413, "BadRequestException", "Request Too Long")
    # GIVEN a request announcing more than 10 MB  WHEN it arrives  THEN 413 before the body is read
    host, port = local.gateway.server_address[:2] if local.gateway else ("", 0)
    with socket.create_connection((str(host), int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (API_GATEWAY_MAX_BODY + 1)
        )
        response = http.client.HTTPResponse(raw)
        response.begin()
        answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    assert_gateway_answer(answer, 413, "BadRequestException", "Request Too Long")


def test_a_json_suffixed_media_type_is_refused_with_postrooms_structured_415(local: LocalStack) -> None:
    message = {"from": "orders@shop.example", "to": ["a@example.org"], "subject": "Hi", "text": "Hello"}
    for media_type in ("application/x+json", "application/merge-patch+json"):
        # WHEN a JSON body is sent under a +json type, which the resolver does not parse
        status, _, body = request(
            local, "POST", "/v1/messages", json.dumps(message).encode(), {"Content-Type": media_type}
        )
        # THEN Postroom's own error, like every other refusal (Powertools answered {"statusCode": 415, "detail": ...})
        assert status == 415, body
        error = json.loads(body)["error"]
        assert error["code"] == "unsupported_media_type"
        assert error["field"] == "Content-Type"
        assert media_type in error["message"]
    status, _, body = request(
        local, "POST", "/v1/messages", json.dumps(message).encode(), {"Content-Type": "application/json"}
    )
    assert status == 202, body
    # and it is the gate that refuses them, before the resolver (which parses only application/json) sees the body
    for media_type in ("application/x+json", "application/merge-patch+json"):
        event = build_event(
            method="POST",
            path="/v1/messages",
            resource="/v1/messages",
            query="",
            headers=[("Authorization", f"Bearer {local.api_key}"), ("Content-Type", media_type)],
            body=json.dumps(message).encode(),
            source_ip="127.0.0.1",
            path_parameters={},
            stage="api",
        )
        with pytest.raises(UnsupportedMediaTypeError):
            screen(event, services())


def test_a_lockout_earned_on_imap_holds_for_the_local_stacks_smtp_submission(local: LocalStack) -> None:
    assert local.bridge is not None
    assert local.submission is not None
    status, _, body = request(
        local, "POST", "/v1/addresses", json.dumps({"address": ADDRESS}).encode(), {"Content-Type": "application/json"}
    )
    assert status == 201, body
    # GIVEN a client that fails to log in to IMAP as often as allowed
    ports = local.bridge.ports()
    client = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10)
    for _ in range(FAILED_LOGINS_ALLOWED):
        with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
            client.login(ADDRESS, "pr_guess")
    client.shutdown()
    # WHEN it turns to the stack's SMTP submission listener with the right key
    # THEN it is locked out there too (454, without asking the API), as the README says
    with smtplib.SMTP("127.0.0.1", local.submission.port, timeout=10) as smtp:
        smtp.ehlo()  # AUTH without STARTTLS: allowed from the same machine
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.login("me", local.api_key)
        assert refused.value.smtp_code == 454
    # and on POP3
    pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
    pop.user(ADDRESS)
    with pytest.raises(poplib.error_proto):
        pop.pass_(local.api_key)
    pop.close()
