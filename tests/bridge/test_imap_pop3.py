"""``postroom bridge`` with real mail clients: Python's imaplib and poplib against the bridge's IMAP and POP3
listeners, over the local stack's mailbox API, with mail arriving through its inbound SMTP listener. Every change a
client makes is checked through the HTTP API too."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from postroom.local.stack import LocalStack
from postroom.protocols.bridge.runner import Bridge, BridgeConfig
from tests.bridge.conftest import ADDRESS, fresh_address
from tests.e2e.test_inbound_local import download
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
def bridge(local: LocalStack, tmp_path: Path) -> Iterator[Bridge]:
    config = BridgeConfig(
        api_url=local.api_url,
        smtp_port=None,
        smtps_port=None,
        imap_port=0,
        pop3_port=0,
        imaps_port=0,
        pop3s_port=0,
        state_dir=tmp_path,
        idle_poll_seconds=0.2,
    )
    with Bridge(config) as running:
        yield running


def receive(stack: LocalStack, subject: str, *, attachment: bytes | None = None, address: str = ADDRESS) -> str:
    """Mail to the address through the stack's inbound SMTP listener; returns the id it is filed under."""
    message = EmailMessage()
    message["From"] = "Ann Example <ann@example.org>"
    message["To"] = address
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash(subject))}@example.org>"
    message.set_content(f"About {subject}.\n")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename="invoice.pdf")
    with smtplib.SMTP(stack.inbound.host, stack.inbound.port, timeout=10) as client:
        client.send_message(message, from_addr="ann@example.org", to_addrs=[address])
    status, page = call(stack, "GET", f"/v1/mailboxes/{address}:inbox/messages?subject={subject.replace(' ', '+')}")
    assert status == 200, page
    return str(page["messages"][0]["id"])


def imap(bridge: Bridge, local: LocalStack, address: str = ADDRESS) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", bridge.ports()["imap"], timeout=10)
    client.login(address, local.api_key)
    return client


def fetch_map(data: list[Any]) -> dict[int, bytes]:
    """UID -> the response bytes of a FETCH (imaplib hands back tuples for literals, bytes otherwise)."""
    found: dict[int, bytes] = {}
    for item in data:
        line = b"".join(item) if isinstance(item, tuple) else item
        if not line or line == b")":
            continue
        uid = re.search(rb"UID (\d+)", line if isinstance(item, bytes) else item[0])
        if uid:
            found[int(uid.group(1))] = line
    return found


def keywords(local: LocalStack, mail_id: str) -> list[str]:
    status, mail = call(local, "GET", f"/v1/mail/{mail_id}")
    assert status == 200, mail
    return list(mail["keywords"])


def test_imap_client_reads_flags_moves_copies_and_expunges_through_the_api(
    address: str, local: LocalStack, bridge: Bridge
) -> None:
    # GIVEN three messages in the Inbox, one with an attachment
    first = receive(local, "Order 1", address=address)
    second = receive(local, "Order 2", attachment=b"%PDF-1.4 fake", address=address)
    third = receive(local, "Order 3", address=address)
    client = imap(bridge, local, address)
    # THEN the client sees the capabilities, the folders with their special use, and the Inbox's state
    typ, caps = client.capability()
    assert {b"IMAP4rev1", b"IDLE", b"MOVE", b"ID"} <= set(caps[0].split())
    typ, data = client.xatom("ID", '("name" "imaplib")')
    assert typ == "OK"
    assert client.untagged_responses.pop("ID") == [b'("name" "Postroom bridge")']
    typ, folders = client.list()
    assert typ == "OK"
    listed = {line.split(b' "/" ')[-1].strip(b'"'): line for line in folders}
    assert set(listed) == {b"INBOX", b"Drafts", b"Sent", b"Junk", b"Archive", b"Trash"}
    for name in ("Drafts", "Sent", "Junk", "Archive", "Trash"):
        assert b"\\" + name.encode() in listed[name.encode()]
    typ, count = client.select("INBOX")
    assert (typ, count) == ("OK", [b"3"])
    uidvalidity = int(client.untagged_responses["UIDVALIDITY"][0])
    uidnext = int(client.untagged_responses["UIDNEXT"][0])
    # WHEN it fetches what a client's message list needs
    typ, data = client.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")
    assert typ == "OK"
    rows = fetch_map(data)
    assert len(rows) == 3
    uids = sorted(rows)
    assert uids[-1] < uidnext
    assert b'"Order 1"' in rows[uids[0]]
    assert b'(("Ann Example" NIL "ann" "example.org"))' in rows[uids[0]]
    # and the header fields and the whole message, which are the bytes the API stores
    status, doc = call(local, "GET", f"/v1/mail/{second}")
    raw, _ = download(local, doc["raw_url"])
    typ, data = client.uid("FETCH", str(uids[1]), "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[] RFC822.SIZE)")
    assert typ == "OK"
    assert data[0][1] == b"From: Ann Example <ann@example.org>\r\nSubject: Order 2\r\n\r\n"
    assert data[1][1] == raw
    assert f"RFC822.SIZE {len(raw)}".encode() in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
    typ, data = client.uid("FETCH", str(uids[1]), "(BODYSTRUCTURE)")
    assert b'"application" "pdf"' in data[0].lower() or b'"APPLICATION" "PDF"' in data[0]
    assert keywords(local, second) == []  # PEEK leaves \Seen alone
    # WHEN it stores flags, and reads a body without PEEK
    typ, data = client.uid("STORE", str(uids[0]), "+FLAGS", "(\\Flagged $Invoiced)")
    assert typ == "OK"
    assert sorted(keywords(local, first)) == ["$flagged", "$invoiced"]
    typ, data = client.uid("FETCH", str(uids[2]), "(BODY[TEXT])")
    assert typ == "OK"
    assert keywords(local, third) == ["$seen"]
    # THEN searches see the flags and the content
    typ, data = client.uid("SEARCH", None, "UNSEEN")
    assert sorted(int(u) for u in data[0].split()) == uids[:2]
    typ, data = client.uid("SEARCH", None, "SUBJECT", '"Order 2"')
    assert data[0].split() == [str(uids[1]).encode()]
    # WHEN it copies one to Archive and moves another to Trash
    typ, _ = client.uid("COPY", str(uids[0]), "Archive")
    assert typ == "OK"
    typ, _ = client.uid("MOVE", str(uids[2]), "Trash")
    assert typ == "OK"
    assert client.untagged_responses.pop("EXPUNGE", None) == [b"3"]
    status, archive = call(local, "GET", f"/v1/mailboxes/{address}:archive/messages")
    assert [m["subject"] for m in archive["messages"]] == ["Order 1"]
    assert archive["messages"][0]["id"] != first
    status, trash = call(local, "GET", f"/v1/mailboxes/{address}:trash/messages")
    assert [m["id"] for m in trash["messages"]] == [third]
    # WHEN it deletes one and expunges
    client.uid("STORE", str(uids[1]), "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = client.expunge()
    assert (typ, data) == ("OK", [b"2"])
    status, _ = call(local, "GET", f"/v1/mail/{second}")
    assert status == 404
    # WHEN new mail arrives, NOOP announces it, with a uid above the ones before
    receive(local, "Order 4", address=address)
    client.noop()
    assert client.untagged_responses.get("EXISTS", [])[-1:] == [b"2"]
    typ, data = client.uid("FETCH", "*", "(UID)")
    assert int(re.search(rb"UID (\d+)", data[-1]).group(1)) >= uidnext
    # and STATUS reports another mailbox without selecting it
    typ, data = client.status("Archive", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
    assert b"MESSAGES 1" in data[0]
    assert b"UNSEEN 1" in data[0]
    client.logout()
    # THEN a new session sees the same UIDVALIDITY and the same uids for the messages that stayed
    again = imap(bridge, local, address)
    again.select("INBOX", readonly=True)
    assert int(again.untagged_responses["UIDVALIDITY"][0]) == uidvalidity
    typ, data = again.uid("FETCH", "1:*", "(UID)")
    assert uids[0] in {int(u) for u in re.findall(rb"UID (\d+)", b" ".join(data))}
    again.logout()


def test_idle_announces_new_mail_and_done_ends_it(address: str, local: LocalStack, bridge: Bridge) -> None:
    receive(local, "Before idle", address=address)
    with socket.create_connection(("127.0.0.1", bridge.ports()["imap"]), timeout=10) as raw:
        reader = raw.makefile("rb")

        def command(line: bytes, tag: bytes) -> list[bytes]:
            raw.sendall(line + b"\r\n")
            lines = []
            while not (got := reader.readline()).startswith(tag + b" "):
                lines.append(got)
            lines.append(got)
            return lines

        reader.readline()  # greeting
        assert command(b"a LOGIN " + address.encode() + b" " + local.api_key.encode(), b"a")[-1].startswith(b"a OK")
        assert b"* 1 EXISTS\r\n" in command(b"b SELECT INBOX", b"b")
        raw.sendall(b"c IDLE\r\n")
        assert reader.readline().startswith(b"+")
        receive(local, "During idle", address=address)
        assert reader.readline() == b"* 2 EXISTS\r\n"
        raw.sendall(b"DONE\r\n")
        assert reader.readline().startswith(b"c OK")


def test_bad_logins_and_malformed_commands_get_clear_answers(address: str, local: LocalStack, bridge: Bridge) -> None:
    client = imaplib.IMAP4("127.0.0.1", bridge.ports()["imap"], timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
        client.login(address, "pr_wrong")
    with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
        client.login("someone@else.example", local.api_key)
    with pytest.raises(imaplib.IMAP4.error):
        client.select("INBOX")  # not logged in
    client.login(address, local.api_key)
    typ, _ = client.select('"No such folder"')
    assert typ == "NO"
    client.select("INBOX")
    with pytest.raises(imaplib.IMAP4.error):
        client.uid("FETCH", "x:y", "(FLAGS)")
    # APPEND to a folder that does not exist says so, with the code that makes clients offer to create it
    typ, data = client.append("Nowhere", None, None, b"Subject: mine\r\n\r\nhello\r\n")
    assert typ == "NO"
    assert data[0].startswith(b"[TRYCREATE]")
    client.logout()


def test_pop3_client_lists_retrieves_and_deletes(address: str, local: LocalStack, bridge: Bridge) -> None:
    first = receive(local, "Pop 1", address=address)
    second = receive(local, "Pop 2", address=address)
    port = bridge.ports()["pop3"]
    refused = poplib.POP3("127.0.0.1", port, timeout=10)
    refused.user(address)
    with pytest.raises(poplib.error_proto):
        refused.pass_("pr_wrong")
    refused.close()
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    client.user(address)
    client.pass_(local.api_key)
    count, total = client.stat()
    assert count == 2
    _, listing, _ = client.list()
    sizes = [int(line.split()[1]) for line in listing]
    assert sum(sizes) == total
    _, uidl, _ = client.uidl()
    assert [line.split()[1].decode() for line in uidl] == [first, second]
    _, doc = call(local, "GET", f"/v1/mail/{first}")
    raw, _ = download(local, doc["raw_url"])
    _, lines, _octets = client.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == raw
    assert sizes[0] == len(raw)
    _, top, _ = client.top(2, 0)
    assert b"Subject: Pop 2" in top
    assert b"About Pop 2." not in top
    # malformed and out-of-range commands are refused, and the session goes on
    for bad in (b"RETR abc", b"RETR 99", b"TOP 1", b"FROB"):
        with pytest.raises(poplib.error_proto):
            client._shortcmd(bad.decode())  # poplib has no public way to send a malformed command
    assert client.noop().startswith(b"+OK")
    client.dele(1)
    with pytest.raises(poplib.error_proto):
        client.retr(1)  # deleted in this session
    assert client.quit().startswith(b"+OK")
    _status, trash = call(local, "GET", f"/v1/mailboxes/{address}:trash/messages")
    assert [m["id"] for m in trash["messages"]] == [first]  # DELE moves to Trash: recoverable
    again = poplib.POP3("127.0.0.1", port, timeout=10)
    again.user(address)
    again.pass_(local.api_key)
    assert again.stat()[0] == 1
    again.quit()


def test_imap_and_pop3_refuse_to_listen_beyond_loopback(local: LocalStack, tmp_path: Path) -> None:
    config = BridgeConfig(
        api_url=local.api_url, host="0.0.0.0", smtp_port=None, smtps_port=None, imaps_port=None, state_dir=tmp_path
    )
    with pytest.raises(ValueError, match="loopback only"):
        Bridge(config).start()


def test_repeated_failed_logins_lock_the_client_out_of_imap_and_pop3(
    address: str, local: LocalStack, bridge: Bridge
) -> None:
    from postroom.protocols.submission.smtp_listener import FAILED_LOGINS_ALLOWED

    client = imaplib.IMAP4("127.0.0.1", bridge.ports()["imap"], timeout=10)
    for _ in range(FAILED_LOGINS_ALLOWED):
        with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
            client.login(address, "pr_guess")
    # THEN even the right key is refused for the lockout window, without a round trip to the API
    with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
        client.login(address, local.api_key)
    client.shutdown()
    pop = poplib.POP3("127.0.0.1", bridge.ports()["pop3"], timeout=10)
    for _ in range(FAILED_LOGINS_ALLOWED):
        pop.user(address)
        with pytest.raises(poplib.error_proto):
            pop.pass_("pr_guess")
    pop.user(address)
    with pytest.raises(poplib.error_proto):
        pop.pass_(local.api_key)
    pop.close()


def test_a_client_dropping_mid_fetch_leaves_the_bridge_serving(address: str, local: LocalStack, bridge: Bridge) -> None:
    for n in range(3):
        receive(local, f"Drop {n}", address=address)
    with socket.create_connection(("127.0.0.1", bridge.ports()["imap"]), timeout=10) as raw:
        raw.recv(1024)
        raw.sendall(b"a LOGIN " + address.encode() + b" " + local.api_key.encode() + b"\r\nb SELECT INBOX\r\n")
        raw.sendall(b"c FETCH 1:* (BODY[])\r\n")  # and gone before reading the answer
    client = imap(bridge, local, address)
    typ, count = client.select("INBOX")
    assert (typ, count) == ("OK", [b"3"])
    typ, _data = client.fetch("1:3", "(FLAGS)")
    assert typ == "OK"
    client.logout()


def test_imaps_and_pop3s_speak_tls_from_the_first_byte(address: str, local: LocalStack, bridge: Bridge) -> None:
    receive(local, "Over TLS", address=address)
    context = ssl.create_default_context(cafile=str(bridge.certificate))
    with imaplib.IMAP4_SSL("127.0.0.1", bridge.ports()["imaps"], ssl_context=context, timeout=10) as client:
        client.login(address, local.api_key)
        typ, count = client.select("INBOX")
        assert (typ, count) == ("OK", [b"1"])
        typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert data[0][1] == b"Subject: Over TLS\r\n\r\n"
    pop = poplib.POP3_SSL("127.0.0.1", bridge.ports()["pop3s"], context=context, timeout=10)
    pop.user(address)
    pop.pass_(local.api_key)
    assert pop.stat()[0] == 1
    pop.quit()
    # and a client that does not trust the certificate gets nowhere
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL("127.0.0.1", bridge.ports()["imaps"], ssl_context=ssl.create_default_context(), timeout=10)


def test_a_password_with_line_breaks_is_a_failed_login_not_a_server_error(
    address: str, local: LocalStack, bridge: Bridge
) -> None:
    # A literal lets a client send any bytes as the password; CR/LF must not reach an HTTP header
    bad = (local.api_key + "\r\nX-Injected: 1").encode()
    with socket.create_connection(("127.0.0.1", bridge.ports()["imap"]), timeout=10) as raw:
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(b"a LOGIN " + address.encode() + b" {%d}\r\n" % len(bad))
        assert reader.readline().startswith(b"+")
        raw.sendall(bad + b"\r\n")
        assert reader.readline().startswith(b"a NO LOGIN failed")


def test_a_listing_can_carry_presigned_raw_urls_that_download_without_the_key(address: str, local: LocalStack) -> None:
    first = receive(local, "Listed 1", address=address)
    receive(local, "Listed 2", address=address)
    status, page = call(local, "GET", f"/v1/mailboxes/{address}:inbox/messages?raw_urls=true")
    assert status == 200, page
    assert page["raw_urls_expire_in"] == 300
    by_id = {m["id"]: m["raw_url"] for m in page["messages"]}
    _, doc = call(local, "GET", f"/v1/mail/{first}")
    via_api, _ = download(local, doc["raw_url"])
    with urllib.request.urlopen(by_id[first], timeout=10) as response:  # no Authorization header
        assert response.read() == via_api
    # and without the flag a listing carries no URLs
    _, plain = call(local, "GET", f"/v1/mailboxes/{address}:inbox/messages")
    assert all("raw_url" not in m for m in plain["messages"])
    assert "raw_urls_expire_in" not in plain


def test_a_listed_url_that_no_longer_works_falls_back_to_the_api(address: str, local: LocalStack) -> None:
    from postroom.protocols.bridge.mailbox_client import MailApi
    from postroom.protocols.submission.api_client import PostroomClient

    mail_id = receive(local, "Fallback", address=address)
    api = MailApi(PostroomClient(local.api_url), local.api_key)
    api.listing(f"{address}:inbox")
    url, usable_until = api._urls[mail_id]  # the listed URL, broken on purpose below
    # (moto does not check signatures, so the URL names an object that is gone, as after an expunge elsewhere)
    broken = urllib.parse.urlsplit(url)._replace(path="/no-such-bucket/no-such-object").geturl()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(broken, timeout=10)
    api._urls[mail_id] = (broken, usable_until)
    _, doc = call(local, "GET", f"/v1/mail/{mail_id}")
    assert api.raw(mail_id) == download(local, doc["raw_url"])[0]


def test_a_lockout_earned_on_imap_holds_for_smtp_submission_too(
    address: str, local: LocalStack, tmp_path: Path
) -> None:
    from postroom.protocols.submission.smtp_listener import FAILED_LOGINS_ALLOWED

    config = BridgeConfig(
        api_url=local.api_url,
        smtp_port=0,
        smtps_port=None,
        imap_port=0,
        pop3_port=None,
        imaps_port=None,
        pop3s_port=None,
        state_dir=tmp_path,
    )
    with Bridge(config) as running:
        client = imaplib.IMAP4("127.0.0.1", running.ports()["imap"], timeout=10)
        for _ in range(FAILED_LOGINS_ALLOWED):
            with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
                client.login(address, "pr_guess")
        client.shutdown()
        with smtplib.SMTP("127.0.0.1", running.ports()["smtp"], timeout=10) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(running.certificate)))
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.login("me", local.api_key)
            assert refused.value.smtp_code == 454


def test_pop3_malformed_commands_get_protocol_answers_not_python_errors(
    address: str, local: LocalStack, bridge: Bridge
) -> None:
    with socket.create_connection(("127.0.0.1", bridge.ports()["pop3"]), timeout=10) as raw:
        reader = raw.makefile("rb")

        def command(line: bytes) -> bytes:
            raw.sendall(line + b"\r\n")
            return reader.readline()

        assert reader.readline().startswith(b"+OK")  # greeting
        assert command(b"USER " + address.encode()).startswith(b"+OK")
        # WHEN PASS comes with no argument THEN a protocol error, not "do_PASS() missing 1 required positional ..."
        assert command(b"PASS") == b"-ERR wrong number of arguments for PASS\r\n"
        assert command(b"USER") == b"-ERR wrong number of arguments for USER\r\n"
        # and the session goes on to a normal login
        assert command(b"USER " + address.encode()).startswith(b"+OK")
        assert command(b"PASS " + local.api_key.encode()).startswith(b"+OK")
        # WHEN a message number is not a number THEN no "invalid literal for int() with base 10: b'abc'"
        assert (
            command(b"DELE abc") == b"-ERR invalid argument for DELE: a message number is a decimal number from 1\r\n"
        )
        assert command(b"DELE 99") == b"-ERR no such message\r\n"
        assert command(b"STAT 1 2") == b"-ERR wrong number of arguments for STAT\r\n"
        # WHEN commands are pipelined behind one that takes a while (LIST holds the rest back, then replays them)
        raw.sendall(b"LIST\r\nPASS\r\nDELE x\r\nNOOP\r\n")
        assert reader.readline().startswith(b"+OK")
        assert reader.readline() == b".\r\n"  # the maildrop is empty
        # THEN the queued ones get the same answers, in order
        assert reader.readline() == b"-ERR wrong number of arguments for PASS\r\n"
        assert reader.readline() == b"-ERR invalid argument for DELE: a message number is a decimal number from 1\r\n"
        assert reader.readline().startswith(b"+OK")
        assert command(b"NOOP").startswith(b"+OK")
        assert command(b"QUIT").startswith(b"+OK")


def test_imap_negative_literal_sizes_are_refused_not_asked_for(address: str, local: LocalStack, bridge: Bridge) -> None:
    with socket.create_connection(("127.0.0.1", bridge.ports()["imap"]), timeout=10) as raw:
        reader = raw.makefile("rb")
        reader.readline()  # greeting
        # WHEN a literal announces -1 octets THEN BAD (it used to answer "+ Ready for -1 octets of text")
        raw.sendall(b"a LOGIN {-1}\r\n")
        assert reader.readline() == b"a BAD Illegal syntax: a literal's size is a number of octets, {0} or more\r\n"
        # WHEN the negative literal comes after a good one (the rest of the command arrives after the first literal)
        raw.sendall(b"b LOGIN {%d}\r\n" % len(address))
        assert reader.readline().startswith(b"+ ")
        raw.sendall(address.encode() + b" {-5}\r\n")
        assert reader.readline() == b"b BAD Illegal syntax: a literal's size is a number of octets, {0} or more\r\n"
        # THEN the session goes on
        raw.sendall(b"c LOGIN " + address.encode() + b" " + local.api_key.encode() + b"\r\n")
        assert reader.readline().startswith(b"c OK")
        raw.sendall(b"d APPEND INBOX {-1}\r\n")
        assert reader.readline() == b"d BAD Illegal syntax: a literal's size is a number of octets, {0} or more\r\n"
        raw.sendall(b"e NOOP\r\n")
        assert reader.readline().startswith(b"e OK")
