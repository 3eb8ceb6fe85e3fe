"""Sent and Drafts with real mail clients (issue 20): neomutt in batch mode sends through the bridge's submission
port and saves its sent copy by APPEND; mbsync (isync) syncs Sent and Drafts channels both ways, uploading a draft,
replacing it and pulling the sent copy down. Everything is checked through the mailbox API too."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import smtplib
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from postroom.local.stack import LocalStack
from postroom.protocols.bridge.runner import Bridge, BridgeConfig
from tests.bridge.conftest import ADDRESS
from tests.e2e.test_local_stack import call

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (shutil.which("neomutt") and shutil.which("mbsync")), reason="needs neomutt and isync (see .ci/run)"
    ),
]

SENT = f"{ADDRESS}:sent"
DRAFTS = f"{ADDRESS}:drafts"
CLIENT_SECONDS = 60  # a client that hangs (waiting for input it will never get) fails the test instead of the run


@pytest.fixture
def bridge(local: LocalStack, tmp_path: Path) -> Iterator[Bridge]:
    config = BridgeConfig(
        api_url=local.api_url,
        smtp_port=0,
        smtps_port=None,
        imap_port=0,
        pop3_port=None,
        imaps_port=None,
        pop3s_port=None,
        state_dir=tmp_path / "bridge",
    )
    with Bridge(config) as running:
        yield running


def listed(local: LocalStack, box: str) -> list[dict[str, Any]]:
    status, page = call(local, "GET", f"/v1/mailboxes/{box}/messages")
    assert status == 200, page
    return list(page["messages"])


def neomutt(
    local: LocalStack, bridge: Bridge, home: Path, subject: str, body: str, *, key: str = "y", record: str = "=Sent"
) -> None:
    """neomutt configured as a user would for the bridge on this machine, sending (``y``) or postponing (``P``) one
    message from its compose menu. On a terminal (a pty): in batch mode neomutt skips an IMAP Fcc altogether
    ("Fcc to an IMAP mailbox is not supported in batch mode")."""
    ports = bridge.ports()
    user = ADDRESS.replace("@", "%40")
    home.mkdir(parents=True, exist_ok=True)
    (home / "body.txt").write_text(body)
    rc = home / "muttrc"
    rc.write_text(
        f'set from="{ADDRESS}"\n'
        'set realname="Shop Support"\n'
        f'set smtp_url="smtp://{user}@127.0.0.1:{ports["smtp"]}/"\n'
        f'set smtp_pass="{local.api_key}"\n'
        f'set imap_pass="{local.api_key}"\n'
        f'set folder="imap://{user}@127.0.0.1:{ports["imap"]}/"\n'
        f'set record="{record}"\nset postponed="=Drafts"\nset copy=yes\n'
        # No editor and no questions: the compose menu takes the one key pushed below.
        "set editor=true\nset abort_unmodified=no\nset fast_reply=yes\nset include=no\n"
        # Plain loopback ports (no certificate prompt to answer).
        "set ssl_starttls=no\nset ssl_force_tls=no\n"
        "set header_cache=''\nset message_cachedir=''\nset imap_passive=no\n"
    )
    command = ["neomutt", "-n", "-F", str(rc), "-s", subject, "-i", str(home / "body.txt")]
    command += ["--", "ann@example.org"]
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "vt100", "LINES": "40", "COLUMNS": "120"}
    status, output = _on_a_terminal(command, env, when=b"NeoMutt: Compose", press=key.encode())
    # neomutt exits 1 when the message was not sent, which is what postponing it means.
    assert status == (0 if key == "y" else 1), output.decode(errors="replace")[-2000:]


def _on_a_terminal(command: list[str], env: dict[str, str], *, when: bytes, press: bytes) -> tuple[int, bytes]:
    """Run a program on a pty, typing ``press`` once its screen shows ``when``; its exit code and what it showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: neomutt, on the pty
        os.execvpe(command[0], command, env)
    output = b""
    deadline = time.monotonic() + CLIENT_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if press and when in output:
                    os.write(fd, press)
                    press = b""
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), output
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def mbsync(local: LocalStack, bridge: Bridge, home: Path) -> str:
    maildir = home / "mail"
    maildir.mkdir(parents=True, exist_ok=True)
    rc = home / "mbsyncrc"
    rc.write_text(
        "IMAPAccount postroom\n"
        f"Host 127.0.0.1\nPort {bridge.ports()['imap']}\n"
        f"User {ADDRESS}\nPass {local.api_key}\n"
        "SSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount postroom\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\nSubFolders Verbatim\n\n"
        "Channel sent\nFar :remote:Sent\nNear :local:Sent\nCreate Near\nSync All\nExpunge Both\nSyncState *\n\n"
        "Channel drafts\nFar :remote:Drafts\nNear :local:Drafts\nCreate Near\nSync All\nExpunge Both\n"
        "SyncState *\n"
    )
    result = subprocess.run(
        ["mbsync", "-c", str(rc), "-a"],
        capture_output=True,
        timeout=CLIENT_SECONDS,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, output
    return output


def write_draft(maildir: Path, name: str, subject: str) -> Path:
    """A draft as a Maildir client keeps it: in cur/, with the D (draft) flag in its name."""
    folder = maildir / "Drafts"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    path = folder / "cur" / f"{name}.localhost:2,D"
    path.write_bytes(
        f"From: {ADDRESS}\r\nTo: ann@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{name}@shop.example>\r\n\r\nStill writing this one.\r\n".encode()
    )
    return path


def test_neomutt_sends_with_a_sent_copy_by_append_and_postpones_a_draft(
    local: LocalStack, bridge: Bridge, tmp_path: Path
) -> None:
    # WHEN neomutt sends a message through the bridge's submission port, saving its copy to =Sent by APPEND
    neomutt(local, bridge, tmp_path / "neomutt", "Your order has shipped", "It left the warehouse today.\n")
    # THEN Sent holds the message once, seen: the copy submission filed and the one neomutt appended are one
    sent = listed(local, SENT)
    assert [(m["subject"], m["keywords"]) for m in sent] == [("Your order has shipped", ["$seen"])]
    # AND the message itself was queued for delivery
    status, page = call(local, "GET", "/v1/messages")
    assert status == 200, page
    assert [m["subject"] for m in page["data"]] == ["Your order has shipped"]
    # WHEN neomutt keeps its copy of the next one in another folder
    neomutt(local, bridge, tmp_path / "neomutt", "Second", "x\n", record="=Archive")
    # THEN that folder has neomutt's own copy (by APPEND), and Sent the one submission filed
    assert [m["subject"] for m in listed(local, f"{ADDRESS}:archive")] == ["Second"]
    assert [m["subject"] for m in listed(local, SENT)] == ["Second", "Your order has shipped"]
    # WHEN neomutt postpones a message instead (its postponed folder is =Drafts)
    neomutt(local, bridge, tmp_path / "neomutt", "Quote for Ann", "Still writing.\n", key="P")
    # THEN the server's Drafts has it, as a draft, and nothing more was sent
    drafts = listed(local, DRAFTS)
    assert [(m["subject"], "$draft" in m["keywords"]) for m in drafts] == [("Quote for Ann", True)]
    assert len(listed(local, SENT)) == 2


def test_mbsync_syncs_sent_and_drafts_channels_and_replaces_a_draft(
    local: LocalStack, bridge: Bridge, tmp_path: Path
) -> None:
    home = tmp_path / "mbsync"
    maildir = home / "mail"
    # GIVEN a message sent through the bridge (filed in Sent by submission) and a draft written offline
    neomutt(local, bridge, tmp_path / "neomutt", "Invoice 1001", "Attached.\n")
    first = write_draft(maildir, "draft1", "Quote for Ann")
    # WHEN mbsync syncs everything
    mbsync(local, bridge, home)
    # THEN the draft is in the server's Drafts as a draft, and the sent message came down into the local Sent
    drafts = listed(local, DRAFTS)
    assert [(m["subject"], "$draft" in m["keywords"]) for m in drafts] == [("Quote for Ann", True)]
    local_sent = [p.read_bytes() for p in (maildir / "Sent").glob("*/*") if p.is_file()]
    assert len(local_sent) == 1
    assert b"Subject: Invoice 1001" in local_sent[0]
    # WHEN the draft is edited (the client writes a new file and removes the old one) and synced again
    for path in (maildir / "Drafts").glob("cur/*"):
        path.unlink()
    assert not first.exists()
    write_draft(maildir, "draft2", "Quote for Ann, revised")
    mbsync(local, bridge, home)
    # THEN the server's Drafts holds only the new version (the old one flagged deleted and expunged)
    drafts = listed(local, DRAFTS)
    assert [m["subject"] for m in drafts] == ["Quote for Ann, revised"]
    # AND a sync with nothing changed changes nothing
    mbsync(local, bridge, home)
    assert [m["subject"] for m in listed(local, DRAFTS)] == ["Quote for Ann, revised"]
    assert len(listed(local, SENT)) == 1


def test_a_sending_key_without_mailbox_access_sends_and_files_no_copy(
    local: LocalStack, bridge: Bridge, tmp_path: Path
) -> None:
    # GIVEN an application's key that may send but not read or write the sender's mailboxes
    status, created = call(local, "POST", "/v1/keys", {"name": "app", "scopes": ["messages:send"]})
    assert status == 201, created
    # WHEN it sends two messages through the bridge's submission port
    for subject in ("Receipt 1", "Receipt 2"):
        message = EmailMessage()
        message["From"] = ADDRESS
        message["To"] = "ann@example.org"
        message["Subject"] = subject
        message.set_content("Thanks.\n")
        with smtplib.SMTP("127.0.0.1", bridge.ports()["smtp"], timeout=10) as client:
            client.login(ADDRESS, created["key"])
            client.send_message(message)  # raises unless answered 250
    # THEN both were accepted for delivery and the sender's Sent is untouched
    status, page = call(local, "GET", "/v1/messages")
    assert status == 200, page
    assert sorted(m["subject"] for m in page["data"]) == ["Receipt 1", "Receipt 2"]
    assert listed(local, SENT) == []
