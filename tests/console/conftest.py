"""The local-stack fixtures (loopback MX sink, DNS server, a started stack) for the console's browser tests."""

from tests.e2e.test_local_stack import dns, local, sink  # noqa: F401 - re-exported fixtures
