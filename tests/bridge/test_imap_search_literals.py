"""SEARCH with literals and the catch-all address on a fresh stack, driven by a real IMAP client (imapclient) against
the bridge over the local stack: the two things a desktop client's account wizard and its first non-ASCII search hit
(issue 20)."""

from __future__ import annotations

import imaplib
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from imapclient import IMAPClient

from postroom.local.stack import LocalStack, StackConfig
from postroom.protocols.bridge.runner import Bridge, BridgeConfig
from tests.bridge.conftest import ADDRESS
from tests.e2e.test_local_stack import call

pytestmark = pytest.mark.e2e


def start_bridge(stack: LocalStack, state_dir: Path) -> Bridge:
    return Bridge(
        BridgeConfig(
            api_url=stack.api_url,
            smtp_port=None,
            smtps_port=None,
            imap_port=0,
            pop3_port=0,
            imaps_port=0,
            pop3s_port=0,
            state_dir=state_dir,
        )
    )


@pytest.fixture
def bridge(local: LocalStack, tmp_path: Path) -> Iterator[Bridge]:
    with start_bridge(local, tmp_path) as running:
        yield running


def receive(stack: LocalStack, subject: str, *, address: str = ADDRESS) -> None:
    message = EmailMessage()
    message["From"] = "ann@example.org"
    message["To"] = address
    message["Subject"] = subject  # non-ASCII: the policy writes it as an RFC 2047 encoded word
    message.set_content(f"About {subject}.\n")
    with smtplib.SMTP(stack.inbound.host, stack.inbound.port, timeout=10) as client:
        client.send_message(message, from_addr="ann@example.org", to_addrs=[address])


def test_search_with_a_utf8_literal_finds_exactly_the_matches_and_the_session_goes_on(
    local: LocalStack, bridge: Bridge
) -> None:
    # GIVEN three messages, two of them with "Grüße" in the subject
    for subject in ("Grüße aus Köln", "Invoice 1234", "Viele Grüße"):
        receive(local, subject)
    with IMAPClient("127.0.0.1", port=bridge.ports()["imap"], ssl=False, timeout=10) as client:
        client.login(ADDRESS, local.api_key)
        client.select_folder("INBOX")
        uids = {client.fetch([uid], ["ENVELOPE"])[uid][b"ENVELOPE"].subject: uid for uid in client.search(["ALL"])}
        assert len(uids) == 3
        # WHEN the client searches for a non-ASCII string: imapclient sends it as a literal,
        # "SEARCH CHARSET UTF-8 SUBJECT {6}" and then the six octets
        found = client.search(["SUBJECT", "Grüße"], charset="UTF-8")
        # THEN exactly the two matching messages, and the connection answers the next commands normally
        matching = {uid for subject, uid in uids.items() if "Grüße" in _decoded(subject)}
        assert len(matching) == 2
        assert sorted(found) == sorted(matching)
        assert client.search(["SUBJECT", "Köln", "FROM", "ann"], charset="UTF-8") == [
            uid for subject, uid in uids.items() if "Köln" in _decoded(subject)
        ]
        assert client.search(["SUBJECT", "Grüße", "SUBJECT", "Viele"], charset="UTF-8") == [
            uids[next(s for s in uids if _decoded(s) == "Viele Grüße")]
        ]
        assert client.noop()[0] == b"NOOP completed"
        assert sorted(client.search(["ALL"])) == sorted(uids.values())


def test_search_in_a_charset_the_bridge_does_not_decode_is_refused_with_badcharset(
    local: LocalStack, bridge: Bridge
) -> None:
    client = imaplib.IMAP4("127.0.0.1", bridge.ports()["imap"], timeout=10)
    client.login(ADDRESS, local.api_key)
    client.select("INBOX")
    status, data = client.search("ISO-8859-1", "SUBJECT", "x")
    assert status == "NO"
    assert b"[BADCHARSET (UTF-8 US-ASCII)]" in data[0]
    assert client.noop()[0] == "OK"
    client.logout()


def _decoded(subject: bytes) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(subject.decode())))


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
