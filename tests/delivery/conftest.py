"""Real peers on loopback for the delivery tests: a DNS server (dnspython) and SMTP sinks (aiosmtpd).

Every MX address is reached on one port (``SmtpOptions.port``), so tests that need several MX hosts put sinks on the
same port of different loopback addresses (127.0.0.1, 127.0.0.2, ::1).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from postroom.deliver.mx import MxResolver
from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink

DNS_TIMEOUT = 1.0
SMTP_TIMEOUT = 1.0  # small, so that a stalled peer costs the suite one second
HELO_NAME = "relay.postroom.test"


def _can_bind(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.fixture
def second_loopback() -> str:
    """Another loopback address than 127.0.0.1 (Linux routes all of 127/8 to lo; macOS does not)."""
    if not _can_bind("127.0.0.2"):
        pytest.skip("127.0.0.2 is not a usable loopback address here")
    return "127.0.0.2"


@pytest.fixture
def ipv6_loopback() -> str:
    if not _can_bind("::1"):
        pytest.skip("no IPv6 loopback here")
    return "::1"


@pytest.fixture(scope="module")
def _module_dns_server() -> Iterator[LoopbackDnsServer]:
    with LoopbackDnsServer() as server:
        yield server


@pytest.fixture
def dns_server(_module_dns_server: LoopbackDnsServer) -> LoopbackDnsServer:
    """The module's DNS server with an empty zone: each test sets the records it needs."""
    _module_dns_server.set_zone({})
    return _module_dns_server


@pytest.fixture
def resolver(dns_server: LoopbackDnsServer) -> MxResolver:
    return MxResolver([dns_server.nameserver], timeout=DNS_TIMEOUT)


@pytest.fixture
def make_sink() -> Iterator[Callable[..., RecordingSink]]:
    sinks: list[RecordingSink] = []

    def make(**kwargs: Any) -> RecordingSink:
        sink = RecordingSink(**kwargs).start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def sink(make_sink: Callable[..., RecordingSink]) -> RecordingSink:
    """The primary sink, on 127.0.0.1 and an ephemeral port: the port every agent of the test connects to."""
    return make_sink()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (so no one else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@pytest.fixture
def make_agent(resolver: MxResolver, sink: RecordingSink) -> Iterator[Callable[..., SmtpDeliveryAgent]]:
    agents: list[SmtpDeliveryAgent] = []

    def make(**overrides: Any) -> SmtpDeliveryAgent:
        settings: dict[str, Any] = {"helo_name": HELO_NAME, "port": sink.port, "timeout": SMTP_TIMEOUT}
        agent = SmtpDeliveryAgent(resolver, SmtpOptions(**(settings | overrides)))
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()


@pytest.fixture
def agent(make_agent: Callable[..., SmtpDeliveryAgent]) -> SmtpDeliveryAgent:
    return make_agent()
