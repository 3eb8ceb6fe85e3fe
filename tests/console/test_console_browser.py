"""The console in a real browser: Debian's chromium, headless, driven by Selenium through chromedriver, against the
local stack (`postroom local`'s harness) with a real SMTP sink on loopback.

Skipped only where /usr/bin/chromedriver is absent; .ci/run installs chromium and chromium-driver, so CI runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.core.auth import Scope
from postroom.local.stack import LocalStack
from postroom.wiring.services import services
from tests.e2e.test_local_stack import call, wait_for_status

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMEDRIVER.exists(),
        reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver",
    ),
]

if CHROMEDRIVER.exists():
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture
def browser() -> Iterator[WebDriver]:
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
    # An explicit driver path: Selenium Manager then downloads nothing.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def wait(driver: WebDriver) -> WebDriverWait:
    # Rows are replaced when a new list arrives, so an element found a moment earlier may be gone: look again.
    return WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])


def sign_in(driver: WebDriver, stack: LocalStack, key: str) -> None:
    driver.get(stack.api_url + "/console")
    field = wait(driver).until(ec.visibility_of_element_located((By.ID, "key")))
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait(driver).until(ec.visibility_of_element_located((By.ID, "activity")))


def send(stack: LocalStack, to: str, subject: str, html: str) -> str:
    status, body = call(
        stack,
        "POST",
        "/v1/messages",
        {
            "from": "orders@shop.example",
            "to": [to],
            "subject": subject,
            "text": "Plain words.",
            "html": html,
        },
    )
    assert status == 202, body
    return str(body["id"])


def open_from_activity(driver: WebDriver, recipient: str, subject: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, "#filters input[name=recipient]")
    box.clear()
    box.send_keys(recipient)
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    # the filtered list has replaced the unfiltered one: every row is to the recipient
    wait(driver).until(
        lambda d: (
            all(recipient in row.text for row in d.find_elements(By.CSS_SELECTOR, "#rows tr"))
            and d.find_elements(By.CSS_SELECTOR, "#rows tr")
        )
    )
    link = wait(driver).until(ec.element_to_be_clickable((By.LINK_TEXT, subject)))
    link.click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "m-subject"), subject))


def test_sign_in_find_a_sent_mail_by_recipient_and_see_it_delivered_and_rendered(
    local: LocalStack, browser: WebDriver
) -> None:
    # GIVEN two delivered messages, one to ann
    send(local, "bob@example.org", "Not this one", "<p>Bob</p>")
    msg_id = send(local, "ann@example.org", "Your order #1001", "<h1 id='hello'>Hello Ann</h1><p>Thanks!</p>")
    wait_for_status(local, msg_id, {"delivered"})
    # WHEN the console is signed in with the key and Activity is filtered by ann's address
    sign_in(browser, local, local.api_key)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "rows"), "Not this one"))
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "rows"), "Your order #1001"))
    # each message once: sign-in's own load and its hash change once both rendered their rows
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rows tr")) == 2
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "activity.png"))
    open_from_activity(browser, "ann@example.org", "Your order #1001")
    # THEN the message page shows the delivered step with the MX's reply, the text part and the rendered HTML
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "m-timeline"), "delivered — 250"))
    assert "queued" in browser.find_element(By.ID, "m-timeline").text
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "m-text"), "Plain words."))
    assert browser.find_element(By.ID, "m-html").get_attribute("sandbox") == ""
    browser.save_screenshot(str(SCREENSHOTS / "message.png"))
    browser.switch_to.frame(browser.find_element(By.ID, "m-html"))
    assert wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1"))).text == "Hello Ann"
    browser.switch_to.default_content()
    # and the key is in no URL the browser holds
    assert local.api_key not in browser.current_url


HOSTILE = (
    "<p>Hostile body</p>"
    "<script>document.body.setAttribute('data-pwned', 'script')</script>"
    "<img src='data:,' onerror=\"document.body.setAttribute('data-pwned', 'onerror')\">"
    "<a id='js' href=\"javascript:document.body.setAttribute('data-pwned','link')\">click me</a>"
    "<svg><animate onbegin=\"document.body.setAttribute('data-pwned','svg')\" attributeName='x' dur='1s'/></svg>"
)


def test_script_onerror_and_javascript_links_in_mail_html_execute_nothing(
    local: LocalStack, browser: WebDriver
) -> None:
    # GIVEN a delivered message whose HTML tries a script, an onerror handler, a javascript: link and an SVG handler
    msg_id = send(local, "eve@example.org", "Hostile", HOSTILE)
    wait_for_status(local, msg_id, {"delivered"})
    # WHEN it is opened in the console and its link is clicked
    sign_in(browser, local, local.api_key)
    open_from_activity(browser, "eve@example.org", "Hostile")
    frame = wait(browser).until(ec.presence_of_element_located((By.ID, "m-html")))
    browser.switch_to.frame(frame)
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "p"), "Hostile body"))
    links = browser.find_elements(By.LINK_TEXT, "click me")
    for link in links:
        link.click()
    # THEN none of them ran: the body carries no mark, and the frame holds no script or handler at all
    body = browser.find_element(By.TAG_NAME, "body")
    assert body.get_attribute("data-pwned") is None
    source = browser.page_source.lower()
    assert "<script" not in source
    assert "onerror" not in source
    assert "javascript:" not in source
    browser.switch_to.default_content()
    assert browser.find_element(By.ID, "m-html").get_attribute("sandbox") == ""


def test_a_key_sees_only_what_its_scopes_allow(local: LocalStack, browser: WebDriver) -> None:
    msg_id = send(local, "ann@example.org", "Scoped", "<p>Scoped</p>")
    wait_for_status(local, msg_id, {"delivered"})
    read_only = services().keys.create(name="reader", scopes=frozenset({Scope.MESSAGES_READ}), tenant="default")
    events_only = services().keys.create(name="events", scopes=frozenset({Scope.EVENTS_READ}), tenant="default")
    # A messages:read key lists and opens messages.
    sign_in(browser, local, read_only)
    open_from_activity(browser, "ann@example.org", "Scoped")
    assert browser.find_element(By.ID, "who").text.endswith("messages:read")
    browser.find_element(By.ID, "sign-out").click()
    # A key without messages:read is told so by the API and sees no message.
    sign_in(browser, local, events_only)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "activity-error"), "messages:read"))
    assert "Scoped" not in browser.find_element(By.ID, "rows").text
