"""The return path end to end in the local stack: a message leaves over real SMTP with a VERP envelope sender, the
remote side's asynchronous bounce (an RFC 3464 DSN) comes back over real SMTP to the loopback listener that plays
SES receiving, and the recipient ends bounced, with its event and suppression - while forged bounce addresses are
refused and out-of-office replies bounce nobody."""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from postroom.local.stack import LocalStack, StackConfig
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.event_services import event_services
from tests.deliverability.conftest import sample
from tests.e2e.test_local_stack import call, wait_for_status

pytestmark = pytest.mark.e2e

RETURN_PATH = "bounces.shop.example"
BOUNCE_MAILBOX = f"bounces@{RETURN_PATH}:inbox"
VERP = re.compile(rf"^bounces\+(msg_[0-9a-z]{{26}})\.([a-z2-7]{{8}})@{re.escape(RETURN_PATH)}$")


@pytest.fixture
def local(sink: RecordingSink, dns: LoopbackDnsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
    monkeypatch.setenv("POSTROOM_RETRY_BASE_SECONDS", "0")
    config = StackConfig(
        api_port=0,
        sandbox=False,
        poll_wait_seconds=1,
        parameters={
            "SendingDomains": "shop.example",
            "DefaultDelivery": "smtp",
            "DnsNameservers": f"127.0.0.1:{dns.port}",
            "SmtpPort": str(sink.port),
            "HeloName": "postroom.test",
            "InboundDomains": f"shop.example,{RETURN_PATH}",
            "ReturnPathDomain": RETURN_PATH,
        },
    )
    stack = LocalStack(config).start()
    yield stack
    stack.stop()


def send_and_deliver(stack: LocalStack, sink: RecordingSink, to: list[str]) -> tuple[str, str]:
    """Send through the API; returns the message id and the MAIL FROM the MX saw."""
    body = {"from": "Shop <orders@shop.example>", "to": to, "subject": "Your order", "text": "Thanks!"}
    status, sent = call(stack, "POST", "/v1/messages", body)
    assert status == 202, sent
    wait_for_status(stack, sent["id"], {"delivered"})
    (received,) = [m for m in sink.messages if f"<{sent['id'].removeprefix('msg_')}@".encode() in m.content]
    return sent["id"], received.mail_from


def dsn_for(message_id: str, recipient: str) -> bytes:
    """Postfix's DSN for ``recipient``, quoting the message's header as the MX received it."""
    return sample("postfix-failed.eml", message_id).replace(b"nobody@example.org", recipient.encode())


def deliver_inbound(stack: LocalStack, raw: bytes, rcpt: str, mail_from: str = "") -> None:
    """To the listener playing SES's inbound MX, with the null reverse path a DSN carries (RFC 5321 §4.5.5)."""
    with smtplib.SMTP(stack.inbound.host, stack.inbound.port, timeout=10) as client:
        client.ehlo("mx.example.org")
        client.sendmail(mail_from, [rcpt], raw)


def bounce_mailbox(stack: LocalStack) -> list[dict[str, Any]]:
    status, page = call(stack, "GET", f"/v1/mailboxes/{BOUNCE_MAILBOX}/messages")
    return page.get("messages", []) if status == 200 else []


def recipient(stack: LocalStack, message_id: str, address: str) -> dict[str, Any]:
    _, record = call(stack, "GET", f"/v1/messages/{message_id}")
    return next(r for r in record["recipients"] if r["address"] == address)


def test_an_asynchronous_bounce_comes_back_through_the_return_path(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN a message the MX accepted (250) for both recipients
    message_id, mail_from = send_and_deliver(local, sink, ["gone@example.org", "ann@example.org"])
    # THEN it left with the message's signed bounce address as MAIL FROM, and its From header unchanged
    match = VERP.match(mail_from)
    assert match is not None, mail_from
    assert match[1] == message_id
    (sent,) = sink.messages
    assert message_from_bytes(sent.content, policy=policy.default)["From"] == "Shop <orders@shop.example>"

    # WHEN the MX later sends a real DSN for one of them to that address, over SMTP
    deliver_inbound(local, dsn_for(message_id, "gone@example.org"), mail_from)

    # THEN that recipient is bounced with the DSN's status, the other stays delivered
    gone = recipient(local, message_id, "gone@example.org")
    assert (gone["status"], gone["enhanced_status"], gone["smtp_code"]) == ("bounced", "5.1.1", 550)
    assert recipient(local, message_id, "ann@example.org")["status"] == "delivered"
    assert call(local, "GET", f"/v1/messages/{message_id}")[1]["status"] == "partially_delivered"
    # AND the timeline has the bounce as an event, reported by the DSN, hard
    _, timeline = call(local, "GET", f"/v1/messages/{message_id}/events")
    (bounced,) = [e for e in timeline["recipients"]["gone@example.org"]["events"] if e["type"] == "bounced"]
    assert (bounced["source"], bounced["details"]["bounce_type"]) == ("dsn", "hard")
    # AND the address is suppressed, the DSN filed nowhere
    _, listed = call(local, "GET", "/v1/suppressions?address=gone@example.org")
    assert [(s["reason"], s["message_id"]) for s in listed["data"]] == [("hard_bounce", message_id)]
    assert bounce_mailbox(local) == []

    # WHEN the same DSN arrives again (the remote MTA retried)
    deliver_inbound(local, dsn_for(message_id, "gone@example.org"), mail_from)
    # THEN nothing more happens: one event, nothing kept
    _, timeline = call(local, "GET", f"/v1/messages/{message_id}/events")
    assert [e["type"] for e in timeline["recipients"]["gone@example.org"]["events"]].count("bounced") == 1
    assert bounce_mailbox(local) == []

    # AND a new message to the suppressed address is not sent
    status, again = call(
        local,
        "POST",
        "/v1/messages",
        {"from": "orders@shop.example", "to": "gone@example.org", "subject": "Hi", "text": "x"},
    )
    assert status == 202, again
    wait_for_status(local, again["id"], {"suppressed"})
    assert len(sink.messages) == 1


def test_forged_bounce_addresses_are_refused(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN a delivered message and its bounce address
    message_id, mail_from = send_and_deliver(local, sink, ["ann@example.org"])
    dsn = dsn_for(message_id, "ann@example.org")
    return_path = event_services().return_path()
    assert return_path is not None
    forgeries = [
        return_path.address_for("msg_" + "0" * 26),  # correctly signed, for an id Postroom never sent
        re.sub(r"\.[a-z2-7]{8}@", ".aaaaaaaa@", mail_from),  # the right id with a guessed signature
        mail_from.replace(mail_from[mail_from.index(".") : mail_from.index("@")], ""),  # the right id, unsigned
    ]
    for forged in forgeries:
        # WHEN a DSN is sent to it
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            deliver_inbound(local, dsn, forged)
        # THEN the listener refuses the address as an unknown user, before reading anything
        ((code, reply),) = refused.value.recipients.values()
        assert (code, reply.split()[0]) == (550, b"5.1.1"), forged
    # AND the recipient is still delivered, nothing suppressed, nothing filed
    assert recipient(local, message_id, "ann@example.org")["status"] == "delivered"
    assert call(local, "GET", "/v1/suppressions?address=ann@example.org")[1]["data"] == []
    assert bounce_mailbox(local) == []


def test_auto_replies_and_unreadable_reports_bounce_nobody_and_are_kept(local: LocalStack, sink: RecordingSink) -> None:
    # GIVEN two delivered messages
    first, first_return = send_and_deliver(local, sink, ["ann@example.org"])
    second, _ = send_and_deliver(local, sink, ["bob@example.org"])

    # WHEN ann's mailbox answers the first with an out-of-office reply (RFC 3834), to its envelope sender
    reply = EmailMessage()
    reply["From"] = "Ann <ann@example.org>"
    reply["To"] = first_return
    reply["Subject"] = "Automatic reply: Your order"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am out of the office until Monday.")
    deliver_inbound(local, reply.as_bytes(), first_return, mail_from="ann@example.org")
    # AND a DSN about the *second* message arrives at the first one's bounce address
    deliver_inbound(local, dsn_for(second, "bob@example.org"), first_return)
    # AND an old server's free-text bounce arrives there too
    deliver_inbound(local, sample("not-a-dsn.eml", first).replace(b"Re: Your order", b"failure notice"), first_return)

    # THEN nobody is bounced
    assert recipient(local, first, "ann@example.org")["status"] == "delivered"
    assert recipient(local, second, "bob@example.org")["status"] == "delivered"
    _, listed = call(local, "GET", "/v1/suppressions")
    assert listed["data"] == []
    # AND all three are kept in the bounce mailbox for a person, each flagged with why, tagged with the message id
    deadline = time.monotonic() + 5
    while len(kept := bounce_mailbox(local)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    by_subject = {m["subject"]: m for m in kept}
    assert set(by_subject) == {"Automatic reply: Your order", "Undelivered Mail Returned to Sender", "failure notice"}
    assert "auto_reply" in by_subject["Automatic reply: Your order"]["flags"]
    assert "unprocessed_bounce" in by_subject["Undelivered Mail Returned to Sender"]["flags"]
    assert "unprocessed_bounce" in by_subject["failure notice"]["flags"]
    assert {m["tag"] for m in kept} == {first}
