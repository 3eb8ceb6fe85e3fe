"""IMAP IDLE hears of new mail while it waits (issue 20): imapclient IDLEs on the Inbox through the bridge, a message is
delivered through the stack's inbound SMTP listener, and the IDLE response announces it. How soon is measured in
bench/imap_idle.py, not here."""

from __future__ import annotations

from pathlib import Path

import pytest
from imapclient import IMAPClient

from postroom.local.stack import LocalStack
from tests.bridge.conftest import ADDRESS
from tests.bridge.test_imap_search_literals import receive, start_bridge

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 10  # a bound for a slow machine (the 30 s poll this replaced would miss it), not a latency figure


def test_a_message_delivered_while_idle_is_announced(local: LocalStack, tmp_path: Path) -> None:
    receive(local, "Before")
    with (
        start_bridge(local, tmp_path) as bridge,
        IMAPClient("127.0.0.1", port=bridge.ports()["imap"], ssl=False, timeout=WAIT_SECONDS) as client,
    ):
        client.login(ADDRESS, local.api_key)
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
        # GIVEN a client idling on its Inbox (the bridge's default check interval, as a user runs it)
        client.idle()
        # WHEN a message arrives
        receive(local, "While idling")
        # THEN the idle session announces it without the client asking
        announced = []
        for _ in range(WAIT_SECONDS):
            announced += client.idle_check(timeout=1)
            if (2, b"EXISTS") in announced:
                break
        client.idle_done()
        assert (2, b"EXISTS") in announced
        # AND the announced message is the new one
        newest = max(client.search(["ALL"]))
        envelope = client.fetch([newest], ["ENVELOPE"])[newest][b"ENVELOPE"]
        assert envelope.subject == b"While idling"
