"""The local-stack fixtures for the dialect tests: the same loopback MX sink, DNS server and stack as tests/e2e.

``shared_sink``/``shared_local`` are module-scoped versions (starting a stack costs 15-35 s under load). A module
that uses them overrides ``sink``, ``local`` and ``_clean_aws_env`` (whose per-test cleaning would strip the stack's
settings from the environment its pollers and handlers read), and keeps its tests' recipients apart so no test reads
another's mail from the shared sink."""

from collections.abc import Iterator

import pytest

from postroom.local.stack import LocalStack
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services
from postroom.wiring.worker_batch import reset_resolver
from tests.conftest import clean_aws_env
from tests.e2e.test_local_stack import ZONE, dns, local, sink, start  # noqa: F401 - re-exported fixtures


@pytest.fixture(scope="module")
def shared_sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@pytest.fixture(scope="module")
def shared_local(shared_sink: RecordingSink) -> Iterator[LocalStack]:
    with LoopbackDnsServer(zone=ZONE) as dns_server, pytest.MonkeyPatch.context() as monkeypatch:
        clean_aws_env(monkeypatch)
        reset_services()
        reset_resolver()
        stack = start(shared_sink, dns_server, monkeypatch, POSTROOM_RETRY_BASE_SECONDS="0", POSTROOM_SMTP_TIMEOUT="2")
        yield stack
        stack.stop()
