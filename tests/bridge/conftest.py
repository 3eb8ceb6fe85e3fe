"""The local stack the bridge tests read mail from: the address ``support@shop.example`` registered, inbound SMTP on a
free port (mail arrives through it as through SES receiving)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.local.stack import LocalStack, StackConfig
from postroom.wiring.services import reset_services
from postroom.wiring.worker_batch import reset_resolver
from tests.conftest import clean_aws_env
from tests.e2e.test_local_stack import call

ADDRESS = "support@shop.example"

_unique = itertools.count(1)


def start_bridge_stack(outbox: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("POSTROOM_INBOUND_SMTP_PORT", "0")
    config = StackConfig(
        api_port=0,
        outbox=outbox,
        poll_wait_seconds=1,
        parameters={"SendingDomains": "shop.example", "InboundDomains": "shop.example"},
    )
    return LocalStack(config).start()


def register_address(stack: LocalStack, address: str) -> None:
    status, body = call(stack, "POST", "/v1/addresses", {"address": address})
    assert status == 201, body


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    stack = start_bridge_stack(tmp_path / "outbox", monkeypatch)
    register_address(stack, ADDRESS)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def shared_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack for a whole module (starting one costs 15-25 s under load). Modules that use it override
    ``_clean_aws_env`` with ``shared_env``: the per-test cleaning would strip the stack's settings from the
    environment its background pollers and handlers read while they run. Each test gets its own address
    (``fresh_address``), so no test sees another's mail."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_aws_env(monkeypatch)
        reset_services()
        reset_resolver()
        stack = start_bridge_stack(tmp_path_factory.mktemp("outbox"), monkeypatch)
        yield stack
        stack.stop()


def fresh_address(stack: LocalStack) -> str:
    """An address no other test of this process has used, registered on the stack."""
    address = f"support-{next(_unique)}@shop.example"
    register_address(stack, address)
    return address
