"""The `postroom` commands that talk to the API, run as subprocesses with --json against the local stack (issue 19
item 4): profiles, keys, stores, send (flags, template, .eml, CSV/JSONL batch), messages, tail, inbox; and one run
under a pseudo-terminal for the human output. Exit codes are asserted as documented in the README."""

from __future__ import annotations

import json
import os
import pty
import select
import smtplib
import stat
import subprocess
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.cli.conftest import POSTROOM, CliStack


def _api(cli: CliStack, method: str, path: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        cli.stack.api_url + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {cli.stack.api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _until_delivered(cli: CliStack, message_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = cli.json("messages", "show", message_id)
        if shown["message"]["status"] in {"delivered", "failed", "bounced"}:
            return shown
        time.sleep(0.3)
    raise AssertionError(f"{message_id} never settled: {shown}")


def test_no_configuration_is_exit_3_and_login_saves_a_private_profile(cli: CliStack) -> None:
    bare = {k: v for k, v in cli.env.items() if k not in ("POSTROOM_URL", "POSTROOM_KEY")}
    # GIVEN no URL and no key anywhere WHEN a command runs THEN it says how to configure one, with exit code 3
    done = subprocess.run([str(POSTROOM), "whoami", "--json"], env=bare, capture_output=True, text=True, check=False)
    assert done.returncode == 3, done
    assert json.loads(done.stdout)["error"]["code"] == "not_configured"
    # WHEN the user logs in with the local stack's URL and key as a profile
    login = [str(POSTROOM), "login", "--url", cli.stack.api_url, "--key", cli.stack.api_key, "--profile", "dev"]
    done = subprocess.run([*login, "--json"], env=bare, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done
    saved = Path(json.loads(done.stdout)["path"])
    # THEN the profile file is the user's alone, and commands use it
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    done = subprocess.run(
        [str(POSTROOM), "--profile", "dev", "whoami", "--json"], env=bare, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["tenant"] == "default"
    # AND a wrong key is exit code 3 with the API's own error
    refused = cli.json("whoami", key="pr_not-a-key", code=3)
    assert refused["error"]["code"] == "unauthorized"


def test_keys_create_list_rotate_and_disable(cli: CliStack) -> None:
    created = cli.json("keys", "create", "--name", "ci", "--scope", "messages:send,messages:read")
    assert created["key"].startswith("pr_")
    assert sorted(created["scopes"]) == ["messages:read", "messages:send"]
    listing = cli.json("keys", "list")
    assert created["id"] in [k["id"] for k in listing["data"]]
    assert created["key"] not in json.dumps(listing)
    # WHEN it is rotated with no grace THEN the new key works and the old one is refused (exit 3)
    rotated = cli.json("keys", "rotate", created["id"], "--grace", "0s")
    assert rotated["previous"]["id"] == created["id"]
    assert cli.json("whoami", key=rotated["key"])["key_id"] == rotated["id"]
    assert cli.json("whoami", key=created["key"], code=3)["error"]["code"] == "unauthorized"
    # WHEN the new key is disabled THEN it stops working too
    assert cli.json("keys", "disable", rotated["id"])["state"] == "disabled"
    assert cli.run("whoami", key=rotated["key"]).returncode == 3
    # AND an id that is no key is exit code 4; a malformed one is the API's 422, exit code 1
    assert cli.json("keys", "disable", "0" * 12, code=4)["error"]["code"] == "not_found"
    assert cli.json("keys", "disable", "short", code=1)["error"]["code"] == "validation_error"
    # AND a bad flag is a usage error, exit code 2
    assert cli.run("keys", "rotate", created["id"], "--grace", "soon").returncode == 2


def test_stores_add_answers_the_webhook_url_and_addresses_are_created(cli: CliStack) -> None:
    store = cli.json(
        "stores", "add", "cli-shop", "--platform", "woocommerce", "--from", "Shop <orders@shop.example>",
        "--secret", "whsec-0123456789",
    )  # fmt: skip
    assert store["webhook_url"] == f"{cli.stack.api_url}/v1/hooks/woocommerce/cli-shop"
    assert "whsec-0123456789" not in json.dumps(store)
    assert [s["id"] for s in cli.json("stores", "list")["data"]] == ["cli-shop"]
    made = cli.json("addresses", "create", "desk@in.shop.example")
    assert made["address"] == "desk@in.shop.example"
    assert "desk@in.shop.example" in [a["address"] for a in cli.json("addresses", "list")["addresses"]]


def test_send_with_flags_a_template_and_an_eml_delivers_and_shows_a_timeline(cli: CliStack, tmp_path: Path) -> None:
    _api(
        cli, "PUT", "/v1/templates/welcome", {"subject": "Welcome {{ name }}", "html": "<p>Hi {{ name }}, #{{ n }}</p>"}
    )
    # WHEN a message is sent from a template with variables
    sent = cli.json(
        "send", "--from", "Shop <hello@shop.example>", "--to", "ann@example.org", "--template", "welcome",
        "--var", "name=Ann", "--var", "n=7",
    )  # fmt: skip
    shown = _until_delivered(cli, sent["id"])
    # THEN it is delivered with the rendered subject, and its timeline names the delivery
    assert shown["message"]["status"] == "delivered", shown
    assert shown["message"]["subject"] == "Welcome Ann"
    assert [e["type"] for e in shown["events"]][-1] == "delivered"
    # WHEN an .eml file is sent as it is
    eml = EmailMessage()
    eml["From"] = "hello@shop.example"
    eml["To"] = "bob@example.org"
    eml["Subject"] = "From a file"
    eml.set_content("Sent with --eml.")
    path = tmp_path / "note.eml"
    path.write_bytes(eml.as_bytes())
    raw = cli.json("send", "--eml", str(path))
    assert _until_delivered(cli, raw["id"])["message"]["status"] == "delivered"
    assert any(b"Sent with --eml." in m.content for m in cli.sink.messages)
    # AND both are listed, newest first
    listed = [m["id"] for m in cli.json("messages", "ls", "--limit", "10")["data"]]
    assert listed.index(raw["id"]) < listed.index(sent["id"])
    # AND a refused send is exit code 1 with the field named (a domain that is no sending domain)
    refused = cli.json("send", "--from", "a@elsewhere.example", "--to", "ann@example.org", "--subject", "x",
                       "--text", "y", code=1)  # fmt: skip
    assert refused["error"]["field"] == "from", refused


def test_a_batch_reports_each_row_and_a_rerun_sends_nothing_twice(cli: CliStack, tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        "to,name,n\nann@example.org,Ann,1\nnot-an-address,Bad,2\ncid@example.org,Cid,3\n", encoding="utf-8"
    )
    args = ("send", "--batch", str(csv_file), "--from", "hello@shop.example", "--template", "welcome")
    _api(cli, "PUT", "/v1/templates/welcome", {"subject": "Welcome {{ name }}", "html": "<p>Hi {{ name }}</p>"})
    # WHEN a CSV with one bad row is sent THEN each row has its result, and the exit code says some failed
    first = cli.json(*args, code=1)
    assert (first["accepted"], first["failed"]) == (2, 1)
    assert [r["status"] for r in first["results"]] == ["accepted", "failed", "accepted"]
    assert first["results"][1]["error"]["field"].startswith("to"), first["results"][1]
    # WHEN the same file is sent again THEN the accepted rows answer their first ids (Idempotency-Key per row)
    again = cli.json(*args, code=1)
    assert [r.get("id") for r in again["results"]] == [r.get("id") for r in first["results"]]
    # AND a JSONL batch with only good rows exits 0
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"to": [f"u{i}@example.org"], "variables": {"name": f"U{i}"}}) for i in range(3)) + "\n"
    )
    result = cli.json("send", "--batch", str(jsonl), "--from", "hello@shop.example", "--template", "welcome")
    assert result["accepted"] == 3
    assert all(r["id"].startswith("msg_") for r in result["results"])


def test_tail_follows_events_filtered_to_one_message(cli: CliStack) -> None:
    sent = cli.json("send", "--from", "hello@shop.example", "--to", "dee@example.org", "--subject", "t", "--text", "x")
    # WHEN tail follows delivered events of that message (from a minute back, so no race with the send)
    done = cli.run(
        "tail", "--json", "--since", "1m", "--message", sent["id"], "--type", "delivered", "--count", "1",
        "--timeout", "30", "--interval", "0.3",
    )  # fmt: skip
    # THEN it prints exactly that event as one JSON line, and stops after it
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert len(lines) == 1, lines
    event = json.loads(lines[0])
    assert (event["type"], event["message_id"], event["recipient"]) == ("delivered", sent["id"], "dee@example.org")


def test_inbox_lists_and_reads_received_mail(cli: CliStack) -> None:
    cli.json("addresses", "create", "support@in.shop.example")
    mail = EmailMessage()
    mail["From"] = "Ann <ann@example.org>"
    mail["To"] = "support@in.shop.example"
    mail["Subject"] = "Where is my order?"
    mail.set_content("Order 1001 has not arrived.")
    inbound = cli.stack.inbound
    with smtplib.SMTP(inbound.host, inbound.port, timeout=10) as client:
        client.send_message(mail)
    listed: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not listed and time.monotonic() < deadline:
        listed = cli.json("inbox", "ls", "support@in.shop.example")["messages"]
        time.sleep(0.2)
    assert [m["subject"] for m in listed] == ["Where is my order?"]
    read = cli.json("inbox", "read", listed[0]["id"])
    assert "Order 1001 has not arrived." in read["text"]


def test_messages_show_on_a_terminal_is_a_coloured_readable_timeline(cli: CliStack) -> None:
    sent = cli.json(
        "send", "--from", "hello@shop.example", "--to", "eve@example.org", "--subject", "pty", "--text", "x"
    )
    _until_delivered(cli, sent["id"])
    # WHEN `messages show` runs on a pseudo-terminal (no --json)
    env = {**cli.env, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(POSTROOM), "messages", "show", sent["id"]], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=30) == 0
    text = output.decode()
    # THEN it is coloured (ANSI escapes), and reads as the message, its recipient and a timeline ending in delivered
    assert "\x1b[" in text
    plain = _strip_ansi(text)
    assert sent["id"] in plain
    assert "timeline" in plain
    assert "eve@example.org" in plain
    timeline = plain[plain.index("timeline") :]
    assert "accepted" in timeline
    assert "delivered" in timeline


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_send_explain_sends_nothing_and_exit_code_says_whether_it_would(cli: CliStack) -> None:
    listed_before = [m["id"] for m in cli.json("messages", "ls", "--limit", "50")["data"]]
    # WHEN a sendable message is explained
    explained = cli.json(
        "send", "--explain", "--from", "hello@shop.example", "--to", "ann@example.org", "--subject", "Hi",
        "--text", "Only explained.",
    )  # fmt: skip
    # THEN it would send, on a named path, with the recipient's outcome, and exit 0
    assert explained["would_send"] is True, explained
    assert explained["refusals"] == []
    assert explained["path"]["path"] in {"smtp", "ses", "relay"}, explained
    assert [r["address"] for r in explained["recipients"]] == ["ann@example.org"]
    # WHEN the sender's domain is not a sending domain, THEN every refusal is listed and the exit code is 1
    refused = cli.json(
        "send", "--explain", "--from", "a@elsewhere.example", "--to", "ann@example.org", "--subject", "x",
        "--text", "y", code=1,
    )  # fmt: skip
    assert refused["would_send"] is False
    assert "from" in [r["field"] for r in refused["refusals"]], refused
    # AND nothing was sent by either
    assert [m["id"] for m in cli.json("messages", "ls", "--limit", "50")["data"]] == listed_before


def test_domains_ls_lists_the_stacks_and_the_added_domains(cli: CliStack) -> None:
    cli.json("domains", "add", "listed.example", "--delivery", "smtp")
    rows = {row["name"]: row for row in cli.json("domains", "ls")["data"]}
    assert rows["listed.example"]["source"] == "api"
    assert rows["listed.example"]["state"] == "pending"
    assert rows["shop.example"]["source"] == "stack"
