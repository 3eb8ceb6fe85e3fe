"""nodemailer (npm, tests/sdk/node) over Postroom's SMTP submission listener, as a Node app configured with SMTP
settings sends: STARTTLS required, the API key as the password. The message is read back through Postroom's API by
the id in the listener's ``250 2.0.0 queued as msg_…`` reply, and from the loopback MX sink, byte-checked."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from postroom.local.stack import LocalStack
from postroom.protocols.submission.api_client import PostroomClient
from postroom.protocols.submission.smtp_listener import SubmissionOptions, submission_server
from postroom.protocols.tlscert import server_context, write_self_signed
from postroom.testing.smtp_peers import RecordingSink
from tests.dialects.node_sdk import NODE_DIR
from tests.e2e.test_local_stack import PDF, PNG, wait_for_status

pytestmark = pytest.mark.e2e


def test_nodemailer_submission_reaches_the_mx_byte_for_byte(
    local: LocalStack, sink: RecordingSink, tmp_path: Path
) -> None:
    node = shutil.which("node")
    assert node, "Node 20 is needed for the Node SDK tests"
    assert (NODE_DIR / "node_modules" / "nodemailer").is_dir(), "run `npm ci` in tests/sdk/node (.ci/run does)"
    cert, key = write_self_signed(tmp_path)
    server = submission_server(PostroomClient(local.api_url), tls_context=server_context(cert, key),
                               options=SubmissionOptions(loopback_auth_without_tls=False))  # fmt: skip
    server.start()
    try:
        call = {
            "host": "127.0.0.1", "port": server.port, "ca": str(cert), "user": "apikey", "pass": local.api_key,
            "mail": {
                "from": '"Shop" <orders@shop.example>', "to": "Ann <ann@example.org>", "cc": "bob@example.org",
                "bcc": "audit@example.org", "subject": "Bestellung #1001 ✓", "text": "Danke für Ihre Bestellung.",
                "html": "<p>Danke! <img src='cid:logo'></p>", "headers": {"X-Order-Id": "1001"},
                "attachments": [
                    {"filename": "invoice.pdf", "content": base64.b64encode(PDF).decode(),
                     "contentType": "application/pdf"},
                    {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "contentType": "image/png",
                     "cid": "logo"},
                ],
            },
        }  # fmt: skip
        result = subprocess.run([node, "nodemailer.mjs"], cwd=NODE_DIR, input=json.dumps(call), capture_output=True,
                                text=True, timeout=60, env={"PATH": str(Path(node).parent)}, check=False)  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ok"], answer
    assert sorted(answer["accepted"]) == ["ann@example.org", "audit@example.org", "bob@example.org"]
    msg_id = re.search(r"queued as (msg_[0-9a-z]{26})", answer["response"])
    assert msg_id, answer["response"]
    record = wait_for_status(local, msg_id.group(1), {"delivered"})
    assert sorted(r["address"] for r in record["recipients"]) == ["ann@example.org", "audit@example.org",
                                                                   "bob@example.org"]  # fmt: skip
    [envelope] = [e for e in sink.messages if "ann@example.org" in e.rcpt_tos]
    assert sorted(envelope.rcpt_tos) == ["ann@example.org", "audit@example.org", "bob@example.org"]
    msg = message_from_bytes(envelope.content, policy=policy.default)
    assert msg.defects == []
    assert msg["Subject"] == "Bestellung #1001 ✓"
    assert msg["Cc"].addresses[0].addr_spec == "bob@example.org"
    assert msg["Bcc"] is None
    assert b"audit@example.org" not in envelope.content
    assert msg["X-Order-Id"] == "1001"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == "Danke für Ihre Bestellung."
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"
