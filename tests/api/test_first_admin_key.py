"""A fresh stack has no API key (issue 19 item 5): the stack's FirstAdminKeyCommand output, resolved as
CloudFormation resolves it and run as printed, mints a key that manages the stack through the API."""

from __future__ import annotations

import re
import shlex

import pytest

from postroom.cli import main
from postroom.local import template as tpl
from postroom.wiring.services import services
from tests.conftest import ROOT, Stack


def test_the_output_command_mints_an_admin_key_that_works_through_the_api(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the command exactly as `sam deploy` prints it for this stack
    template = tpl.load_template(ROOT / "template.yaml")
    command = tpl.resolve(template["Outputs"]["FirstAdminKeyCommand"]["Value"], stack.resources, template=template)
    words = shlex.split(command)
    assignments = [w for w in words if re.match(r"^[A-Z_]+=", w)]
    assert assignments == ["AWS_REGION=us-east-1"]
    program, *argv = words[len(assignments) :]
    assert program == "postroom"
    assert argv[argv.index("--table") + 1] == services().settings.table
    # WHEN it runs with the deployer's credentials
    for assignment in assignments:
        monkeypatch.setenv(*assignment.split("=", 1))
    capsys.readouterr()
    assert main(argv) == 0
    key = capsys.readouterr().out.strip()
    # THEN the printed key is an admin key: it manages keys, domains and stores, and sends
    status, listing = stack.request("GET", "/v1/keys", key=key)
    assert status == 200, listing
    assert "admin" in [k["name"] for k in listing["data"]]
    status, created = stack.request("POST", "/v1/keys", {"name": "shop", "scopes": ["messages:send"]}, key=key)
    assert status == 201, created
    assert stack.request("GET", "/v1/stores", key=key)[0] == 200
    message = {"from": "orders@shop.example", "to": ["ann@example.org"], "subject": "Hi", "text": "Hello"}
    assert stack.request("POST", "/v1/messages", message, key=key)[0] == 202
