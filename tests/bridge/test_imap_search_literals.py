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

from postroom.local.stack import LocalStack
from postroom.protocols.bridge.runner import Bridge, BridgeConfig
from tests.bridge.conftest import ADDRESS, fresh_address

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _clean_aws_env(shared_local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``shared_local`` cleaned the environment once for this module and then set
    the stack's settings there, which its pollers and handlers read between and during tests."""


@pytest.fixture
def local(shared_local: LocalStack) -> LocalStack:
    """The module's one stack: the tests share it, each with its own address, so none sees another's mail. (The
    catch-all test needs a stack with nothing registered: it is in test_catch_all_login.py.)"""
    return shared_local


@pytest.fixture
def address(local: LocalStack) -> str:
    return fresh_address(local)


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
    address: str, local: LocalStack, bridge: Bridge
) -> None:
    # GIVEN three messages, two of them with "Grüße" in the subject
    for subject in ("Grüße aus Köln", "Invoice 1234", "Viele Grüße"):
        receive(local, subject, address=address)
    with IMAPClient("127.0.0.1", port=bridge.ports()["imap"], ssl=False, timeout=10) as client:
        client.login(address, local.api_key)
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
    address: str, local: LocalStack, bridge: Bridge
) -> None:
    client = imaplib.IMAP4("127.0.0.1", bridge.ports()["imap"], timeout=10)
    client.login(address, local.api_key)
    client.select("INBOX")
    status, data = client.search("ISO-8859-1", "SUBJECT", "x")
    assert status == "NO"
    assert b"[BADCHARSET (UTF-8 US-ASCII)]" in data[0]
    assert client.noop()[0] == "OK"
    client.logout()


def _decoded(subject: bytes) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(subject.decode())))
