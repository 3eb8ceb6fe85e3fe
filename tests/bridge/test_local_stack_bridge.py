"""``postroom local`` serving the bridge's IMAP and POP3 itself. Kept apart from test_imap_pop3.py: it starts its own
stack, and starting one resets moto's process-wide state, which would wipe the stack that module shares."""

from __future__ import annotations

import imaplib
import poplib
from pathlib import Path

import pytest

from postroom.local.stack import LocalStack, StackConfig
from tests.bridge.conftest import ADDRESS
from tests.bridge.test_imap_pop3 import receive
from tests.e2e.test_local_stack import call

pytestmark = pytest.mark.e2e


def test_the_local_stack_serves_imap_and_pop3_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `postroom local` starts the bridge's IMAP and POP3 listeners over its own API (ports 2143 and 2110 by default)
    monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
    config = StackConfig(
        api_port=0,
        outbox=tmp_path / "outbox",
        imap_port=0,
        pop3_port=0,
        parameters={"SendingDomains": "shop.example", "InboundDomains": "shop.example"},
    )
    with LocalStack(config) as stack:
        call(stack, "POST", "/v1/addresses", {"address": ADDRESS})
        receive(stack, "Local")
        ports = stack.bridge.ports()
        assert set(ports) == {"imap", "pop3"}
        with imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=10) as client:
            client.login(ADDRESS, stack.api_key)
            assert client.select("INBOX") == ("OK", [b"1"])
        pop = poplib.POP3("127.0.0.1", ports["pop3"], timeout=10)
        pop.user(ADDRESS)
        pop.pass_(stack.api_key)
        assert pop.stat()[0] == 1
        pop.quit()
