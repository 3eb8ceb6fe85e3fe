"""Mail to the return path as SES delivers it to the inbound function: DSNs applied exactly once (a retried invocation
repeats nothing and still finishes the follow-up), forged bounce addresses refused without backscatter."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws

from postroom.core import aws
from postroom.local import template as tpl
from postroom.wiring.event_services import event_services
from postroom.wiring.services import services
from tests.conftest import ROOT, load_function, start_stack
from tests.deliverability.conftest import sample
from tests.inbound.conftest import Inbound

RETURN_PATH = "bounces.shop.example"


@pytest.fixture
def inbound(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbound]:
    with mock_aws():
        stack = start_stack(
            monkeypatch, {"InboundDomains": f"shop.example,{RETURN_PATH}", "ReturnPathDomain": RETURN_PATH}
        )
        template = tpl.load_template(ROOT / "template.yaml")
        key = services().keys.create(name="mail", scopes=frozenset(), mailboxes=frozenset({"*"}))
        yield Inbound(
            stack, load_function(template, "InboundFunction"), load_function(template, "MailboxApiFunction"), key
        )


@pytest.fixture
def bounces_sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """SendBounce calls the inbound function makes (moto has no emulation of it)."""
    calls: list[dict[str, Any]] = []
    real = aws.client

    def client(name: str) -> Any:
        return SimpleNamespace(send_bounce=lambda **kw: calls.append(kw)) if name == "ses" else real(name)

    monkeypatch.setattr(aws, "client", client)
    return calls


def queued_message(inbound: Inbound, to: list[str]) -> str:
    status, sent = inbound.stack.request(
        "POST", "/v1/messages", {"from": "orders@shop.example", "to": to, "subject": "Your order", "text": "x"}
    )
    assert status == 202, sent
    return sent["id"]


def test_a_dsn_delivered_twice_bounces_once_and_a_lost_follow_up_is_done_on_the_retry(
    inbound: Inbound, monkeypatch: pytest.MonkeyPatch, bounces_sent: list[dict[str, Any]]
) -> None:
    # GIVEN a message and its bounce address
    message_id = queued_message(inbound, ["gone@example.org"])
    return_path = event_services().return_path()
    assert return_path is not None
    assert return_path.signed
    address = return_path.address_for(message_id)
    dsn = sample("postfix-failed.eml", message_id).replace(b"nobody@example.org", b"gone@example.org")
    # AND a suppression list that fails once, after the bounce and its event are stored (the invocation crashes)
    suppressions = event_services().suppressions
    real_add = suppressions.add
    failures = iter([RuntimeError("DynamoDB unavailable")])

    def flaky_add(*args: Any, **kwargs: Any) -> bool:
        if (error := next(failures, None)) is not None:
            raise error
        return real_add(*args, **kwargs)

    monkeypatch.setattr(suppressions, "add", flaky_add)
    with pytest.raises(RuntimeError, match="DynamoDB unavailable"):
        inbound.receive(dsn, [address], mail_from="", message_id="dsnreceipt0000000000000000000000")
    record = services().messages.get(message_id)
    assert record.recipients[0].status.value == "bounced"
    assert event_services().suppressions.check("default", ["gone@example.org"], domain="shop.example") == {}

    # WHEN Lambda retries the invocation (the same SES event)
    result = inbound.receive(dsn, [address], mail_from="", message_id="dsnreceipt0000000000000000000000")
    # THEN the address is suppressed now, the event is still one, and nothing was filed or bounced back
    (outcome,) = result["messages"][0]["bounces"]
    assert (outcome["disposition"], outcome["message_id"]) == ("applied", message_id)
    assert event_services().suppressions.check("default", ["gone@example.org"], domain="shop.example")
    timeline = event_services().events.timeline(message_id)
    assert [(e.type.value, e.source) for e in timeline if e.type.value == "bounced"] == [("bounced", "dsn")]
    assert result["messages"][0]["filed"] == []
    assert bounces_sent == []


def test_forged_bounce_addresses_are_rejected_without_a_bounce_of_the_bounce(
    inbound: Inbound, bounces_sent: list[dict[str, Any]]
) -> None:
    # GIVEN a message, and DSNs about it to a bounce address with a wrong tag and one naming nothing
    message_id = queued_message(inbound, ["ann@example.org"])
    dsn = sample("postfix-failed.eml", message_id).replace(b"nobody@example.org", b"ann@example.org")
    forged = [f"bounces+{message_id}.aaaaaaaa@{RETURN_PATH}", f"bounces+hello@{RETURN_PATH}"]
    # WHEN SES delivers them (SES cannot refuse at RCPT time: the receipt rule takes the whole domain)
    result = inbound.receive(dsn, forged, mail_from="")["messages"][0]
    # THEN both are rejected, nobody is told (the sender of a forged bounce is forged or null), nothing is kept
    assert [(r["recipient"], r["status"]) for r in result["rejected"]] == [(a, "5.1.1") for a in forged]
    assert bounces_sent == []
    assert services().messages.get(message_id).recipients[0].status.value == "pending"
    # AND an ordinary unknown recipient at an inbound domain is still bounced as before
    inbound.receive(dsn, ["nobody@shop.example"], mail_from="ann@example.org")
    assert [c["BouncedRecipientInfoList"][0]["Recipient"] for c in bounces_sent] == ["nobody@shop.example"]
