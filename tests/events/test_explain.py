"""``POST /v1/messages/explain``: the dry run answers from the real accept and delivery code (the loopback DNS server
for MX, the suppression list in the table, the pacer's windows) and leaves nothing behind: no record, no queue pointer,
no mail at the sink."""

from __future__ import annotations

import base64

import pytest

from postroom.core.auth import Scope
from postroom.testing.dns_server import SANDBOX_MX_HOST, LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services
from tests.conftest import create_key
from tests.events.conftest import EventsStack


def _nothing_written(events_stack: EventsStack, sink: RecordingSink) -> None:
    status, listed = events_stack.get("/v1/messages")
    assert status == 200
    assert listed["data"] == []
    assert events_stack.stack.queue_messages() == []
    assert events_stack.deliver() == 0
    assert sink.messages == []


def test_explain_reports_path_mx_tls_suppression_size_and_pacing_without_sending(
    events_stack: EventsStack, sink: RecordingSink
) -> None:
    # GIVEN a suppressed recipient and a sending domain configured for direct SMTP
    assert events_stack.call("POST", "/v1/suppressions", {"address": "bob@example.org"})[0] == 201
    body = {
        "from": "orders@smtp.example",
        "to": ["ann@example.org", "bob@example.org"],
        "subject": "Your order",
        "text": "Thanks!",
    }
    # WHEN the caller asks what a send would do
    status, answer = events_stack.call("POST", "/v1/messages/explain", body)
    # THEN it answers the worker's path and why, the MX and TLS policy, and each recipient's suppression state
    assert status == 200, answer
    assert answer["would_send"] is True
    assert answer["refusals"] == []
    assert answer["path"] == {"path": "smtp", "why": "SendingDomains sets smtp.example=smtp"}
    [domain] = answer["domains"]
    assert domain["domain"] == "example.org"
    assert [host["host"] for host in domain["mx"]] == [SANDBOX_MX_HOST]
    assert domain["mx"][0]["addresses"] == ["127.0.0.1"]
    assert domain["tls"]["policy"] == "opportunistic"
    assert domain["tls"]["mta_sts"] is None
    assert domain["last_starttls"] is None  # nothing has been sent to example.org yet
    by_address = {r["address"]: r for r in answer["recipients"]}
    assert by_address["ann@example.org"]["outcome"] == "smtp"
    assert by_address["ann@example.org"]["suppression"] is None
    assert by_address["bob@example.org"]["outcome"] == "suppressed"
    assert by_address["bob@example.org"]["suppression"]["reason"] == "manual"
    # the size is the MIME the worker would build, and the pacing outlook names the recipient domain's window
    assert 200 < answer["size"]["encoded_bytes"] < answer["size"]["limit_bytes"]
    assert [w["key"] for w in answer["pacing"]["windows"]] == ["smtp:example.org"]
    assert answer["pacing"]["deferred"] is False
    assert answer["dkim"]["signer"] in {"postroom", None}
    # AND nothing was stored, queued or sent
    _nothing_written(events_stack, sink)
    # WHEN a message has gone to example.org, explain knows the TLS of that last session
    events_stack.send({**body, "to": ["ann@example.org"]})
    events_stack.deliver()
    _, again = events_stack.call("POST", "/v1/messages/explain", body)
    seen = again["domains"][0]["last_starttls"]
    assert seen["mx_host"] == SANDBOX_MX_HOST
    assert seen["tls"] is False  # the loopback sink offers no STARTTLS
    assert seen["tls_policy"] == "opportunistic"


def test_explain_collects_every_refusal_not_only_the_first(
    events_stack: EventsStack, sink: RecordingSink, dns: LoopbackDnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a small size limit and a recipient domain that publishes a null MX
    monkeypatch.setenv("POSTROOM_MAX_MESSAGE_BYTES", "4000")
    reset_services()
    dns.set_zone({"nullmx.example": {"MX": [(0, ".")]}})
    attachment = base64.b64encode(b"x" * 6000).decode()
    body = {
        "from": "someone@not-ours.example",
        "to": ["ann@nullmx.example"],
        "subject": "Hello",
        "text": "Hi",
        "delivery": "relay",
        "attachments": [{"filename": "big.bin", "content": attachment}],
    }
    # WHEN it is explained
    status, answer = events_stack.call("POST", "/v1/messages/explain", body)
    # THEN every reason is there, each with the code and status the send route would answer
    assert status == 200, answer
    assert answer["would_send"] is False
    codes = {(r["code"], r["status"], r["field"]) for r in answer["refusals"]}
    assert ("sender_not_allowed", 403, "from") in codes
    assert ("validation_error", 422, "delivery") in codes
    assert ("payload_too_large", 413, "attachments") in codes
    assert ("recipient_domain_rejects_mail", 422, "to") in codes
    assert len(codes) == 4
    # AND the send route, given the same body, refuses it with the first of them
    assert events_stack.call("POST", "/v1/messages", body)[0] == 403
    _nothing_written(events_stack, sink)


def test_explain_needs_the_send_scope_and_is_declared_in_the_openapi_document(events_stack: EventsStack) -> None:
    reader = create_key(frozenset({Scope.MESSAGES_READ}))
    body = {"from": "orders@smtp.example", "to": ["ann@example.org"], "subject": "s", "text": "t"}
    status, answer = events_stack.call("POST", "/v1/messages/explain", body, key=reader)
    assert status == 403
    assert answer["error"]["field"] == "Authorization"
    status, document = events_stack.call("GET", "/v1/openapi.json", key=None)
    assert status == 200
    assert "post" in document["paths"]["/v1/messages/explain"]
