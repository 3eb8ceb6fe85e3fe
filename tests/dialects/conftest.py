"""The local-stack fixtures for the dialect tests: the same loopback MX sink, DNS server and stack as tests/e2e."""

from tests.e2e.test_local_stack import dns, local, sink  # noqa: F401 - re-exported fixtures
