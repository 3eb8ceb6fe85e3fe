"""The suppression list: hard bounces from a real SMTP server on loopback add the address, the next send to it is
``suppressed`` while its other recipients still get the mail; soft bounces add nothing; the API manages entries."""

from __future__ import annotations

import pytest

from postroom.events.event_model import BounceType, bounce_type
from postroom.testing.smtp_peers import RecordingSink, Stage
from tests.conftest import create_key
from tests.events.conftest import EventsStack

MESSAGE = {"from": "orders@smtp.example", "subject": "Your order", "text": "Thanks!"}


def test_hard_bounce_suppresses_the_address_and_the_next_send_skips_only_it(
    events_stack: EventsStack, sink: RecordingSink
) -> None:
    # GIVEN an MX that does not know gone@example.org
    sink.script(Stage.RCPT, "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown", match="gone@")
    first = events_stack.send({**MESSAGE, "to": ["gone@example.org"]})
    # WHEN the worker delivers it
    events_stack.deliver()
    # THEN it bounced hard, and the address is on the suppression list with the reason and the source message
    assert events_stack.record(first)["status"] == "bounced"
    status, listed = events_stack.get("/v1/suppressions?address=gone@example.org")
    assert status == 200
    (entry,) = listed["data"]
    assert (entry["address"], entry["reason"], entry["message_id"], entry["domain"]) == (
        "gone@example.org",
        "hard_bounce",
        first,
        None,
    )
    assert "User unknown" in entry["details"]
    (bounced,) = events_stack.timeline(first)["data"]
    assert (bounced["type"], bounced["details"]["bounce_type"], bounced["source"]) == ("bounced", "hard", "smtp")
    assert bounced["details"]["smtp_code"] == 550

    # WHEN the next message goes to the suppressed address and another one
    second = events_stack.send({**MESSAGE, "to": ["Gone@Example.org", "ann@example.org"]})
    events_stack.deliver()
    # THEN only the other one is sent; the suppressed recipient is reported as such, without an attempt
    record = events_stack.record(second)
    by_address = {r["address"]: r for r in record["recipients"]}
    assert by_address["Gone@example.org"]["status"] == "suppressed"
    assert by_address["Gone@example.org"]["attempts"] == 0
    assert "hard_bounce" in by_address["Gone@example.org"]["reply"]
    assert by_address["ann@example.org"]["status"] == "delivered"
    assert record["status"] == "partially_delivered"
    assert [m.rcpt_tos for m in sink.messages] == [("ann@example.org",)]
    types = {(e["recipient"], e["type"]) for e in events_stack.timeline(second)["data"]}
    assert types == {("Gone@example.org", "suppressed"), ("ann@example.org", "delivered")}


def test_soft_bounce_and_deferral_suppress_nothing(events_stack: EventsStack, sink: RecordingSink) -> None:
    # GIVEN a policy rejection (5.7.1: about the sender, not the address) and a temporary failure
    sink.script(Stage.RCPT, "550 5.7.1 Message rejected by policy", match="strict@")
    sink.script(Stage.RCPT, "451 4.2.1 Mailbox busy, try later", match="busy@", times=1)
    msg_id = events_stack.send({**MESSAGE, "to": ["strict@example.org", "busy@example.org"]})
    events_stack.deliver()
    # THEN the bounce is soft, the deferral is an event, and nobody is suppressed
    events = events_stack.timeline(msg_id)["data"]
    kinds = {(e["recipient"], e["type"], e["details"].get("bounce_type")) for e in events}
    assert ("strict@example.org", "bounced", "soft") in kinds
    assert ("busy@example.org", "deferred", None) in kinds
    assert ("busy@example.org", "delivered", None) in kinds  # the retry went through
    _, listed = events_stack.get("/v1/suppressions")
    assert listed["data"] == []


@pytest.mark.parametrize(
    ("enhanced", "code", "expected"),
    [
        ("5.1.1", 550, BounceType.HARD),
        ("5.1.10", 550, BounceType.HARD),  # null MX (RFC 7505)
        ("5.2.1", 550, BounceType.HARD),  # mailbox disabled
        ("5.4.4", None, BounceType.HARD),  # unroutable domain
        ("5.1.8", 553, BounceType.SOFT),  # bad *sender* address
        ("5.2.2", 552, BounceType.SOFT),  # mailbox full
        ("5.7.1", 550, BounceType.SOFT),  # policy
        ("5.3.0", None, BounceType.SOFT),  # SES refused the send
        (None, 550, BounceType.HARD),
        (None, 554, BounceType.SOFT),
    ],
)
def test_bounce_classification_follows_the_enhanced_status(enhanced: str | None, code: int | None, expected) -> None:
    assert bounce_type(enhanced, code) is expected


def test_manual_entries_scoped_per_domain_and_removable(events_stack: EventsStack, sink: RecordingSink) -> None:
    # GIVEN ann suppressed for shop.example only, and bob for every domain
    status, added = events_stack.call(
        "POST", "/v1/suppressions", {"address": "Ann@Example.org", "domain": "shop.example", "details": "asked us"}
    )
    assert status == 201, added
    assert (added["address"], added["reason"], added["domain"]) == ("ann@example.org", "manual", "shop.example")
    assert events_stack.call("POST", "/v1/suppressions", {"address": "bob@example.org"})[0] == 201
    # adding again keeps the first entry
    assert events_stack.call("POST", "/v1/suppressions", {"address": "bob@example.org"})[1]["created"] is False
    # WHEN both are mailed from smtp.example
    msg_id = events_stack.send({**MESSAGE, "to": ["ann@example.org", "bob@example.org"]})
    events_stack.deliver()
    # THEN the domain-scoped entry does not apply there, the all-domains one does
    by_address = {r["address"]: r["status"] for r in events_stack.record(msg_id)["recipients"]}
    assert by_address == {"ann@example.org": "delivered", "bob@example.org": "suppressed"}
    # listing by domain and removing work; removing twice is a 404
    _, page = events_stack.get("/v1/suppressions?domain=shop.example")
    assert [e["address"] for e in page["data"]] == ["ann@example.org"]
    assert events_stack.call("DELETE", "/v1/suppressions?address=bob@example.org")[0] == 204
    status, body = events_stack.call("DELETE", "/v1/suppressions?address=bob@example.org")
    assert (status, body["error"]["code"]) == (404, "not_found")
    _, page = events_stack.get("/v1/suppressions")
    assert [e["address"] for e in page["data"]] == ["ann@example.org"]


def test_suppression_api_validates_and_needs_scopes(events_stack: EventsStack) -> None:
    status, body = events_stack.call("POST", "/v1/suppressions", {"address": "not an address"})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "validation_error", "address")
    status, body = events_stack.call(
        "POST", "/v1/suppressions", {"address": "a@example.org", "domain": "other.example"}
    )
    assert (status, body["error"]["field"]) == (422, "domain")
    status, body = events_stack.call("POST", "/v1/suppressions", {"address": "a@example.org", "topic": "news"})
    assert status == 422
    from postroom.core.auth import Scope

    reader = create_key(frozenset({Scope.SUPPRESSIONS_READ}))
    assert events_stack.call("GET", "/v1/suppressions", key=reader)[0] == 200
    status, body = events_stack.call("POST", "/v1/suppressions", {"address": "a@example.org"}, key=reader)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    # another tenant sees none of this tenant's entries
    events_stack.call("POST", "/v1/suppressions", {"address": "a@example.org"})
    other = create_key(tenant="other")
    assert events_stack.call("GET", "/v1/suppressions", key=other)[1]["data"] == []
