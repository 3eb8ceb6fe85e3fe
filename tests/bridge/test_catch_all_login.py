"""Login as the catch-all address on a fresh stack, before its first mail, with a real IMAP client (imapclient)
against the bridge: what a desktop client's account wizard does at once (issue 20). Kept apart from
test_imap_search_literals.py, which shares one stack between its tests: this one needs a stack with nothing
registered, and starting a second stack would reset moto's process-wide state under the shared one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from postroom.local.stack import LocalStack, StackConfig
from tests.bridge.test_imap_search_literals import start_bridge
from tests.e2e.test_local_stack import call

pytestmark = pytest.mark.e2e


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """A stack with a catch-all address configured and nothing registered, no mail received."""
    monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
    config = StackConfig(
        api_port=0,
        outbox=tmp_path / "outbox",
        poll_wait_seconds=1,
        parameters={
            "SendingDomains": "shop.example",
            "InboundDomains": "shop.example",
            "InboundCatchAll": "shop.example=help",
        },
    )
    stack = LocalStack(config).start()
    yield stack
    stack.stop()


def test_login_as_the_catch_all_address_works_before_its_first_mail(fresh: LocalStack, tmp_path: Path) -> None:
    # GIVEN a fresh stack whose catch-all address has received nothing
    with (
        start_bridge(fresh, tmp_path / "bridge") as bridge,
        IMAPClient("127.0.0.1", port=bridge.ports()["imap"], ssl=False, timeout=10) as client,
    ):
        # WHEN a mail client logs in as the catch-all address, as an account wizard does at once
        client.login("help@shop.example", fresh.api_key)
        # THEN it is in, with an empty Inbox and the usual folders
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        names = {name for _flags, _delimiter, name in client.list_folders()}
        assert {"INBOX", "Archive", "Trash"} <= names
    # AND the API lists the address from the start too
    status, body = call(fresh, "GET", "/v1/addresses")
    assert status == 200, body
    assert [a["address"] for a in body["addresses"]] == ["help@shop.example"]
