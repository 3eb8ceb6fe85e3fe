"""One long SMTP session against the local stack's inbound listener (the SES receiving stand-in): a sender that
keeps its connection open for 1 000 transactions must have every one filed, and the session must not drop (it did,
silently, after ~776 messages once). Small messages keep the run short; the stack is the shared e2e one."""

from __future__ import annotations

import os
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.local.stack import LocalStack, StackConfig
from tests.e2e.test_local_stack import call

pytestmark = pytest.mark.e2e

TRANSACTIONS = int(os.environ.get("POSTROOM_TEST_TRANSACTIONS", "1000"))


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
    config = StackConfig(
        api_port=0,
        outbox=tmp_path / "outbox",
        parameters={"SendingDomains": "shop.example", "InboundDomains": "shop.example"},
    )
    stack = LocalStack(config).start()
    yield stack
    stack.stop()


def test_one_session_of_a_thousand_transactions_files_every_message(local: LocalStack) -> None:
    # GIVEN a registered address
    status, created = call(local, "POST", "/v1/addresses", {"address": "orders@shop.example"})
    assert status == 201, created
    assert local.inbound is not None
    accepted: list[str] = []
    # WHEN one SMTP session sends 1 000 messages, MAIL/RCPT/DATA each, without reconnecting
    with smtplib.SMTP(local.inbound.host, local.inbound.port, timeout=30) as client:
        client.ehlo("client.example.org")
        for n in range(TRANSACTIONS):
            assert client.mail("ann@example.org")[0] == 250, n
            assert client.rcpt("orders@shop.example")[0] == 250, n
            body = f"From: ann@example.org\r\nTo: orders@shop.example\r\nSubject: order {n}\r\n\r\n#{n}\r\n"
            code, reply = client.data(body.encode())
            # THEN each transaction is answered 250 with the id it was stored under
            assert code == 250, (n, reply)
            accepted.append(reply.decode().rsplit(" ", 1)[-1])
        assert client.noop()[0] == 250  # the session is still alive after the last one
    assert len(set(accepted)) == TRANSACTIONS
    # AND every message is in the Inbox
    status, boxes = call(local, "GET", "/v1/mailboxes?address=orders@shop.example")
    assert status == 200, boxes
    totals = {m["name"]: m["total"] for m in boxes["mailboxes"]}
    assert totals["Inbox"] == TRANSACTIONS
