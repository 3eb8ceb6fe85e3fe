"""The local-stack fixtures of the listener tests (a started stack, the loopback MX sink and DNS), for every module
here."""

from tests.submission.test_submission import local, peers  # noqa: F401 - re-exported fixtures
