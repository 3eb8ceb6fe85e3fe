"""Webhooks out: a receiver on loopback gets Standard Webhooks-signed events that an independent implementation (the
standardwebhooks package) verifies; failures are retried on schedule and kept in the attempt history; a subscription
that keeps failing is disabled; URLs that point into private networks are refused."""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook

from postroom.testing.smtp_peers import RecordingSink, Stage
from postroom.webhooks.signing import new_secret, signature
from postroom.webhooks.url_guard import UnsafeUrlError, check_url
from postroom.wiring.services import reset_services
from tests.events.conftest import EventsStack, Receiver

MESSAGE = {
    "from": "orders@smtp.example",
    "subject": "Your order",
    "text": "Thanks!",
    "tags": ["order"],
    "metadata": {"order_id": "1001"},
}


def subscribe(events_stack: EventsStack, url: str, **extra: Any) -> dict[str, Any]:
    status, body = events_stack.call("POST", "/v1/webhooks", {"url": url, **extra})
    assert status == 201, body
    assert body["secret"].startswith("whsec_")
    return body


def test_events_arrive_signed_and_verify_with_an_independent_implementation(
    events_stack: EventsStack, sink: RecordingSink, receiver: Receiver
) -> None:
    # GIVEN a subscription to bounces and deliveries
    hook = subscribe(events_stack, receiver.url, event_types=["bounced", "delivered"])
    sink.script(Stage.RCPT, "550 5.1.1 no such user", match="gone@")
    # WHEN a message is delivered to one recipient and bounces for the other
    msg_id = events_stack.send({**MESSAGE, "to": ["ann@example.org", "gone@example.org"]})
    events_stack.deliver()
    assert events_stack.webhooks() == 2
    # THEN the receiver got both events, each verifying with the standardwebhooks package and the shown secret
    assert len(receiver.requests) == 2
    verifier = Webhook(hook["secret"])
    kinds = set()
    for request in receiver.requests:
        payload = verifier.verify(request.body, request.headers)
        assert request.path == "/hooks/postroom"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == payload["data"]["id"]
        assert payload["data"]["message_id"] == msg_id
        assert payload["data"]["tags"] == ["order"]
        assert payload["data"]["metadata"] == {"order_id": "1001"}
        kinds.add((payload["type"], payload["data"]["recipient"]))
    assert kinds == {("delivered", "ann@example.org"), ("bounced", "gone@example.org")}
    # a tampered body does not verify
    with pytest.raises(Exception, match="signature"):
        verifier.verify(receiver.requests[0].body.replace(b"ann", b"eve"), receiver.requests[0].headers)
    # and the history shows one successful attempt per event
    _, attempts = events_stack.get(f"/v1/webhooks/{hook['id']}/attempts")
    assert [(a["outcome"], a["status_code"], a["attempt"]) for a in attempts["data"]] == [("delivered", 204, 1)] * 2
    # the secret is shown at creation only
    _, listed = events_stack.get("/v1/webhooks")
    assert "secret" not in listed["data"][0]


def test_a_failing_receiver_is_retried_with_the_same_id(
    events_stack: EventsStack, sink: RecordingSink, receiver: Receiver
) -> None:
    # GIVEN a receiver that answers 500 twice, then 204
    hook = subscribe(events_stack, receiver.url, event_types=["delivered"])
    receiver.script = [500, 500]
    events_stack.send({**MESSAGE, "to": ["ann@example.org"]})
    events_stack.deliver()
    # WHEN the sender works through the queue (the test's retry schedule has no delays)
    events_stack.webhooks()
    # THEN the event came three times, always with the same webhook-id and a valid signature
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for request in receiver.requests:
        Webhook(hook["secret"]).verify(request.body, request.headers)
    _, attempts = events_stack.get(f"/v1/webhooks/{hook['id']}/attempts")
    assert [(a["outcome"], a["status_code"], a["attempt"]) for a in attempts["data"]] == [
        ("delivered", 204, 3),
        ("retrying", 500, 2),
        ("retrying", 500, 1),
    ]
    assert attempts["data"][1]["response"] == "ok"
    _, current = events_stack.get(f"/v1/webhooks/{hook['id']}")
    assert (current["enabled"], current["consecutive_failures"]) == (True, 0)


def test_repeated_failure_gives_up_into_the_dlq_and_disables(
    events_stack: EventsStack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a policy of disabling after 3 failures in a row (over any time) and a receiver that always fails
    monkeypatch.setenv("POSTROOM_WEBHOOK_DISABLE_MIN_FAILURES", "3")
    monkeypatch.setenv("POSTROOM_WEBHOOK_DISABLE_AFTER_SECONDS", "0")
    reset_services()
    hook = subscribe(events_stack, receiver.url)
    receiver.script = [500] * 10
    events_stack.send({**MESSAGE, "to": ["ann@example.org"]})
    # WHEN the event's deliveries fail
    events_stack.deliver()
    events_stack.webhooks()
    # THEN after the third failure the subscription is disabled, with the reason, and the task is parked in the DLQ
    assert len(receiver.requests) == 3
    _, current = events_stack.get(f"/v1/webhooks/{hook['id']}")
    assert current["enabled"] is False
    assert "3 failed attempts in a row" in current["disabled_reason"]
    dlq = events_stack.stack.resources["WebhookDeadLetterQueue"]["Ref"]
    (parked,) = boto3.client("sqs").receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(parked["Body"])["subscription"] == hook["id"]
    assert "disabled" in parked["MessageAttributes"]["reason"]["StringValue"]
    # a disabled subscription gets no new events; enabling it again resets the failure record
    events_stack.send({**MESSAGE, "to": ["bob@example.org"]})
    events_stack.deliver()
    assert events_stack.webhooks() == 0
    status, enabled = events_stack.call("PATCH", f"/v1/webhooks/{hook['id']}", {"enabled": True})
    assert (status, enabled["enabled"], enabled["consecutive_failures"], enabled.get("disabled_reason")) == (
        200,
        True,
        0,
        None,
    )


def test_urls_into_private_networks_are_refused(
    events_stack: EventsStack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a subscription made while loopback was allowed (as in the local stack)
    hook = subscribe(events_stack, receiver.url, event_types=["delivered"])
    # WHEN the stack runs with the default (private addresses refused)
    monkeypatch.setenv("POSTROOM_WEBHOOK_ALLOW_PRIVATE", "false")
    reset_services()
    for url in ("https://127.0.0.1/hook", "https://localhost/hook", "http://example.com/hook", "https://[::1]/"):
        status, body = events_stack.call("POST", "/v1/webhooks", {"url": url})
        assert (status, body["error"]["code"], body["error"]["field"]) == (422, "webhook_url_refused", "url"), url
    # THEN deliveries to the existing subscription are refused too, before any connection is made
    events_stack.send({**MESSAGE, "to": ["ann@example.org"]})
    events_stack.deliver()
    events_stack.webhooks()
    assert receiver.requests == []
    _, attempts = events_stack.get(f"/v1/webhooks/{hook['id']}/attempts")
    assert attempts["data"][0]["error"].startswith("refused: webhook URLs must use https")


def resolver(*addresses: str):
    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses
        ]

    return resolve


@pytest.mark.parametrize(
    "address",
    ["10.0.0.5", "172.16.1.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fd00::1", "::ffff:10.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_private_link_local_and_mapped_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeUrlError, match="not a public address"):
        check_url("https://hooks.example.com/in", resolve=resolver("93.184.216.34", address))


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 (RFC 6052) of 169.254.169.254, the instance metadata service
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::808:808",  # NAT64 local-use prefix (RFC 8215): only ever a local network
        "2002:a9fe:a9fe::1",  # 6to4 (RFC 3056) of 169.254.169.254
        "2002:c0a8:101::",  # 6to4 of 192.168.1.1
        "2002:6440:1::1",  # 6to4 of 100.64.0.1 (CGNAT)
        "::a9fe:a9fe",  # IPv4-compatible (RFC 4291 2.5.5.1) form of 169.254.169.254
        "::10.0.0.1",  # the same form written with a dotted quad
        "::ffff:169.254.169.254",  # IPv4-mapped, already refused before: kept as the reference case
    ],
)
def test_ipv6_forms_of_private_or_metadata_addresses_are_refused(address: str) -> None:
    # Each is a global IPv6 address to Python 3.11/3.12's ipaddress; what it reaches is the embedded IPv4 address.
    with pytest.raises(UnsafeUrlError, match="not a public address"):
        check_url("https://hooks.example.com/in", resolve=resolver(address))


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"])
def test_ipv6_forms_of_public_addresses_pass(address: str) -> None:
    # Decided by the embedded address, not by refusing the translation prefixes wholesale: NAT64 and 6to4 to a
    # public IPv4 endpoint are ordinary ways for an IPv6-only network to reach it.
    assert check_url("https://hooks.example.com/in", resolve=resolver(address)).addresses == (address,)


def test_public_https_urls_pass_and_keep_the_checked_addresses() -> None:
    target = check_url("https://hooks.example.com:8443/in?x=1", resolve=resolver("93.184.216.34", "2606:2800::1"))
    assert (target.host, target.port, target.path) == ("hooks.example.com", 8443, "/in?x=1")
    assert target.addresses == ("93.184.216.34", "2606:2800::1")
    with pytest.raises(UnsafeUrlError, match="credentials"):
        check_url("https://user:pw@hooks.example.com/", resolve=resolver("93.184.216.34"))


def test_signature_matches_the_reference_implementation() -> None:
    secret = new_secret()
    body = b'{"type":"delivered","data":{"id":"evt_1"}}'
    from datetime import UTC, datetime

    reference = Webhook(secret).sign("evt_1", datetime.fromtimestamp(1_700_000_000, UTC), body.decode())
    assert signature(secret, "evt_1", 1_700_000_000, body) == reference


def test_webhook_api_validates_input(events_stack: EventsStack, receiver: Receiver) -> None:
    status, body = events_stack.call("POST", "/v1/webhooks", {"url": receiver.url, "event_types": ["exploded"]})
    assert (status, body["error"]["field"]) == (422, "event_types")
    status, body = events_stack.call("POST", "/v1/webhooks", {"url": receiver.url, "secret": "whsec_short"})
    assert (status, body["error"]["field"]) == (422, "secret")
    assert events_stack.get("/v1/webhooks/wh_00000000000000000000000000")[0] == 404
    hook = subscribe(events_stack, receiver.url, secret="whsec_" + "A" * 44)
    assert events_stack.call("DELETE", f"/v1/webhooks/{hook['id']}")[0] == 204
    assert events_stack.get(f"/v1/webhooks/{hook['id']}")[0] == 404
