"""The local-stack fixtures (loopback MX sink, DNS server, a started stack) for the console's browser tests, and one
headless chromium per module: a browser module shares its stack and browser, so CI starts each once per module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postroom.local.stack import LocalStack
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from postroom.wiring.services import reset_services
from tests.e2e.test_local_stack import dns, local, sink, start  # noqa: F401 - re-exported fixtures

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def module_sink() -> Iterator[RecordingSink]:
    with RecordingSink() as server:
        yield server


@pytest.fixture(scope="module")
def module_dns(module_sink: RecordingSink) -> Iterator[LoopbackDnsServer]:
    zone = {
        "example.org": {"MX": [(10, "mx.example.org")]},
        "mx.example.org": {"A": ["127.0.0.1"]},
        # the sending domain as a half-done setup, so the Domains page has both passes and records to publish
        "shop.example": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    }
    with LoopbackDnsServer(zone=zone) as server:
        yield server


@pytest.fixture(scope="module")
def console_stack(
    module_sink: RecordingSink, module_dns: LoopbackDnsServer
) -> Iterator[tuple[LocalStack, dict[str, str]]]:
    """One local stack for a whole browser module (its tests keep to their own recipients and names), with the
    environment it set up: the root conftest clears POSTROOM_*/AWS_* before every test, so :func:`console` puts it
    back for each."""
    with pytest.MonkeyPatch.context() as patch:
        # Webhooks may go to loopback (the Webhooks page's receiver); failed ones are retried at once.
        stack = start(
            module_sink,
            module_dns,
            patch,
            POSTROOM_RETRY_BASE_SECONDS="0",
            POSTROOM_SMTP_TIMEOUT="2",
            POSTROOM_WEBHOOK_ALLOW_PRIVATE="true",
            POSTROOM_WEBHOOK_TIMEOUT_SECONDS="2",
        )
        env = {name: value for name, value in os.environ.items() if name.startswith(("POSTROOM_", "AWS_"))}
        yield stack, env
        stack.stop()


@pytest.fixture
def console(
    _clean_aws_env: None, console_stack: tuple[LocalStack, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> LocalStack:
    """The module's stack, its environment restored for this test (after the root conftest's clean-up)."""
    stack, env = console_stack
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_services()
    return stack


@pytest.fixture(scope="module")
def console_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's chromium, headless, through chromedriver; downloads land in ``driver.download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1200,1100",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    # An explicit driver path: Selenium Manager then downloads nothing.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.download_dir = downloads
    yield driver
    driver.quit()
