"""The local stack the bridge tests read mail from: the address ``support@shop.example`` registered, inbound SMTP on a
free port (mail arrives through it as through SES receiving)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.local.stack import LocalStack, StackConfig
from tests.e2e.test_local_stack import call

ADDRESS = "support@shop.example"


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
    config = StackConfig(
        api_port=0,
        outbox=tmp_path / "outbox",
        poll_wait_seconds=1,
        parameters={"SendingDomains": "shop.example", "InboundDomains": "shop.example"},
    )
    stack = LocalStack(config).start()
    status, body = call(stack, "POST", "/v1/addresses", {"address": ADDRESS})
    assert status == 201, body
    yield stack
    stack.stop()
