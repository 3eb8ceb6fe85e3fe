"""The IMAP extensions the store backs (issue 20), driven by imapclient against the bridge over the local stack:
special-use folders, APPEND with APPENDUID, COPY and MOVE with COPYUID, UID EXPUNGE (UIDPLUS, RFC 4315), ENABLE
(RFC 5161), CONDSTORE and QRESYNC (RFC 7162) and NAMESPACE."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

from postroom.local.stack import LocalStack
from tests.bridge.conftest import fresh_address
from tests.bridge.test_imap_search_literals import receive, start_bridge
from tests.e2e.test_local_stack import call

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _clean_aws_env(shared_local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``shared_local`` cleaned the environment once for this module and then set
    the stack's settings there, which its pollers and handlers read between and during tests."""


@pytest.fixture
def local(shared_local: LocalStack) -> LocalStack:
    """The module's one stack: the tests share it, each with its own address, so none sees another's mail."""
    return shared_local


@pytest.fixture
def address(local: LocalStack) -> str:
    return fresh_address(local)


@pytest.fixture
def client(local: LocalStack, address: str, tmp_path: Path) -> Iterator[IMAPClient]:
    with (
        start_bridge(local, tmp_path) as bridge,
        IMAPClient("127.0.0.1", port=bridge.ports()["imap"], ssl=False, timeout=10) as connected,
    ):
        connected.login(address, local.api_key)
        yield connected


def code(answer: bytes, name: str) -> list[str]:
    found = re.search(rb"\[" + name.encode() + rb" ([^\]]*)\]", answer)
    assert found, answer
    return found.group(1).decode().split()


def test_special_use_folders_and_append_with_appenduid(address: str, local: LocalStack, client: IMAPClient) -> None:
    # THEN the client finds Sent, Drafts and Junk by their special use, and the extensions it can rely on
    caps = set(client.capabilities())
    assert {b"UIDPLUS", b"ENABLE", b"CONDSTORE", b"QRESYNC", b"SPECIAL-USE", b"MOVE", b"ID", b"NAMESPACE"} <= caps
    uses = {name: flags for flags, _delimiter, name in client.list_folders()}
    assert b"\\Sent" in uses["Sent"]
    assert b"\\Drafts" in uses["Drafts"]
    assert b"\\Junk" in uses["Junk"]
    assert client.find_special_folder(b"\\Sent") == "Sent"
    personal = client.namespace().personal
    assert personal is not None
    assert personal[0][0] == ""
    # WHEN it appends a draft with its flags and a date
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    raw = f"From: {address}\r\nTo: ann@example.org\r\nSubject: Draft\r\n\r\nNot yet.\r\n".encode()
    answer = client.append("Drafts", raw, flags=[b"\\Draft", b"\\Seen"], msg_time=when)
    # THEN APPENDUID names the mailbox's UIDVALIDITY and the new uid, which fetches what was appended
    validity, uid = (int(v) for v in code(answer, "APPENDUID"))
    status = client.folder_status("Drafts", [b"UIDVALIDITY", b"MESSAGES"])
    assert (validity, status[b"MESSAGES"]) == (status[b"UIDVALIDITY"], 1)
    client.select_folder("Drafts")
    fetched = client.fetch([uid], ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])[uid]
    assert set(fetched[b"FLAGS"]) == {b"\\Draft", b"\\Seen"}
    assert fetched[b"INTERNALDATE"].astimezone(UTC) == when
    assert fetched[b"BODY[]"] == raw
    # WHEN it appends to the mailbox it has selected, the new message is announced before the tagged answer
    client.append("Drafts", raw.replace(b"Draft", b"Draft 2"))
    assert len(client.search(["ALL"])) == 2


def test_copy_and_move_answer_copyuid_and_uid_expunge_removes_only_the_named(
    address: str, local: LocalStack, client: IMAPClient
) -> None:
    for subject in ("One", "Two", "Three"):
        receive(local, subject, address=address)
    client.select_folder("INBOX")
    one, two, three = sorted(client.search(["ALL"]))
    # WHEN one message is copied to Archive (the command sent on imapclient's own connection: its copy() and
    # imaplib's uid() both drop the tagged answer's text, which carries COPYUID)
    typ, data = client._imap._simple_command("UID", "COPY", str(one), "Archive")
    assert typ == "OK"
    answer = data[0]
    # THEN COPYUID pairs the source uid with the copy's uid there
    validity, source, copies = code(answer, "COPYUID")
    assert int(source) == one
    archive = client.folder_status("Archive", [b"UIDVALIDITY", b"UIDNEXT"])
    assert int(validity) == archive[b"UIDVALIDITY"]
    assert int(copies) < archive[b"UIDNEXT"]
    # WHEN two are flagged deleted and only one is expunged by uid (UIDPLUS)
    client.add_flags([one, two], [b"\\Deleted"])
    client.uid_expunge([one])
    # THEN the other deleted one stays
    assert sorted(client.search(["ALL"])) == [two, three]
    # WHEN one moves to Junk
    client.move([three], "Junk")
    # THEN it is there and gone from here, and the API agrees
    assert client.search(["ALL"]) == [two]
    status, page = call(local, "GET", f"/v1/mailboxes/{address}:junk/messages")
    assert status == 200, page
    assert [m["subject"] for m in page["messages"]] == ["Three"]


def test_condstore_and_qresync_resync_a_mailbox_from_its_last_modseq(
    address: str, local: LocalStack, tmp_path: Path
) -> None:
    for subject in ("One", "Two", "Three"):
        receive(local, subject, address=address)
    with start_bridge(local, tmp_path) as bridge:
        port = bridge.ports()["imap"]
        # GIVEN a client that synced the Inbox with QRESYNC and kept UIDVALIDITY, HIGHESTMODSEQ and each MODSEQ
        with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as first:
            first.login(address, local.api_key)
            assert first.enable("QRESYNC") == [b"QRESYNC"]
            selected = first.select_folder("INBOX")
            validity, highest = selected[b"UIDVALIDITY"], selected[b"HIGHESTMODSEQ"]
            one, two, three = sorted(first.search(["ALL"]))
            modseqs = {uid: data[b"MODSEQ"][0] for uid, data in first.fetch([one, two, three], ["MODSEQ"]).items()}
            assert max(modseqs.values()) <= highest
            assert first.folder_status("Archive", [b"HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == 0
        # WHEN, elsewhere, one message is flagged, one expunged and a new one arrives
        with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as other:
            other.login(address, local.api_key)
            other.select_folder("INBOX")
            other.add_flags([one], [b"\\Flagged"])
            other.add_flags([two], [b"\\Deleted"])
            other.uid_expunge([two])
        receive(local, "Four", address=address)
        # THEN the client's next SELECT (QRESYNC ...) tells it exactly that: two vanished, one's new flags, the new one
        with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as again:
            again.login(address, local.api_key)
            again.enable("QRESYNC")
            imap = again._imap
            # (imapclient's select_folder sends no SELECT parameters: the command goes on its connection as is)
            typ, _ = imap._simple_command("SELECT", "INBOX", f"(QRESYNC ({validity} {highest}))")
            assert typ == "OK"
            imap.state = "SELECTED"
            assert imap.untagged_responses.pop("VANISHED") == [b"(EARLIER) " + str(two).encode()]
            fetched = imap.untagged_responses.pop("FETCH")
            changed = {int(re.search(rb"UID (\d+)", line).group(1)): line for line in fetched}  # type: ignore[union-attr]
            four = max(changed)
            assert set(changed) == {one, four}
            assert b"\\Flagged" in changed[one]
            new_highest = int(imap.untagged_responses.pop("OK")[-1].split()[1].rstrip(b"]"))  # the last OK code
            assert new_highest > highest
            # AND FETCH (CHANGEDSINCE) names the same changes, with VANISHED for the UID form
            since = again.fetch([one, three, four], ["FLAGS"], modifiers=[f"CHANGEDSINCE {highest}"])
            assert set(since) == {one, four}
            assert all(data[b"MODSEQ"][0] > highest for data in since.values())
            typ, _ = imap._simple_command("UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {highest} VANISHED)")
            assert typ == "OK"
            assert imap.untagged_responses.pop("VANISHED") == [b"(EARLIER) " + str(two).encode()]
            assert len(imap.untagged_responses.pop("FETCH")) == 2
            # AND SEARCH MODSEQ finds them, with the highest modseq among them
            found = again.search(["MODSEQ", str(highest + 1)])
            assert sorted(found) == [one, four]
            assert found.modseq == max(data[b"MODSEQ"][0] for data in since.values())
            # WHEN a conditional STORE names a modseq older than one message's
            current = {uid: data[b"MODSEQ"][0] for uid, data in again.fetch([one, three], ["MODSEQ"]).items()}
            typ, data = imap._simple_command(
                "UID", "STORE", f"{one},{three}", f"(UNCHANGEDSINCE {current[three]})", "+FLAGS", "(\\Answered)"
            )
            # THEN only the unchanged one is stored, the other is named in MODIFIED
            assert typ == "OK"
            assert data[0].startswith(b"[MODIFIED " + str(one).encode() + b"]")
            flags = again.get_flags([one, three])
            assert b"\\Answered" in flags[three]
            assert b"\\Answered" not in flags[one]
            # AND an expunge under QRESYNC is told as VANISHED with the uid
            again.add_flags([three], [b"\\Deleted"])
            imap._simple_command("UID", "EXPUNGE", str(three))
            assert imap.untagged_responses.pop("VANISHED") == [str(three).encode()]


def test_enable_ignores_what_it_does_not_know(client: IMAPClient) -> None:
    assert client.enable("X-UNKNOWN", "CONDSTORE") == [b"CONDSTORE"]
    assert client.enable("CONDSTORE") == []  # already on
    assert client.noop()[0] == b"NOOP completed"
