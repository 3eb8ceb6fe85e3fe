"""Every console page in a real browser (Debian's chromium, headless, through chromedriver) against one local stack
with a real SMTP sink and inbound SMTP listener on loopback: the message actions, Mailboxes, Templates, Suppressions,
Webhooks, API keys, Domains and Overview, and what a key without their scopes sees. Each page's screenshot goes to
docs/console/ (the README shows them).

Skipped only where /usr/bin/chromedriver is absent; .ci/run installs chromium and chromium-driver, so CI runs them.
"""

from __future__ import annotations

import smtplib
import socket
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from postroom.core.auth import Scope
from postroom.local.stack import LocalStack
from postroom.wiring.services import services
from tests.console.conftest import CHROMEDRIVER
from tests.e2e.test_local_stack import call, wait_for_status

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMEDRIVER.exists(),
        reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver",
    ),
]

if CHROMEDRIVER.exists():
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait


def wait(driver: Any) -> Any:
    return WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def open_page(driver: Any, stack: LocalStack, key: str, hash_: str) -> None:
    """Sign in with ``key`` (unless this tab already holds it) and go to ``hash_``."""
    driver.get(stack.api_url + "/console")
    held = driver.execute_script("return sessionStorage.getItem('postroom.key')")
    if held != key:
        if held:
            wait(driver).until(ec.element_to_be_clickable((By.ID, "sign-out"))).click()
        field = wait(driver).until(ec.visibility_of_element_located((By.ID, "key")))
        field.send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
        # sign-in goes on to the key's landing page: wait until it did, so it cannot override the page asked for
        wait(driver).until(lambda d: d.execute_script("return location.hash") != "")
    driver.get(stack.api_url + "/console" + hash_)


def shot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def send(stack: LocalStack, to: str, subject: str, **extra: Any) -> str:
    status, body = call(
        stack,
        "POST",
        "/v1/messages",
        {
            "from": "orders@shop.example",
            "to": [to],
            "subject": subject,
            "text": "Plain words.",
            "html": "<p>Hello</p>",
            **extra,
        },
    )
    assert status == 202, body
    return str(body["id"])


def in_frame(driver: Any, frame_id: str, text: str) -> bool:
    """Whether the sandboxed frame's document shows ``text`` (switching in and back out)."""
    driver.switch_to.frame(driver.find_element(By.ID, frame_id))
    try:
        return text in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.switch_to.default_content()


def test_message_actions_unsuppress_resend_and_cancel(console: LocalStack, console_browser: Any) -> None:
    stack, driver = console, console_browser
    # GIVEN a message not sent because its recipient is suppressed, and a scheduled one
    assert call(stack, "POST", "/v1/suppressions", {"address": "kim@example.org"})[0] == 201
    blocked = send(stack, "kim@example.org", "Your receipt")
    wait_for_status(stack, blocked, {"suppressed"})
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    scheduled = send(stack, "lee@example.org", "Tomorrow's reminder", send_at=later)
    # WHEN the suppressed message is opened and its recipient taken off the list
    open_page(driver, stack, stack.api_key, f"#/messages/{blocked}")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "m-status"), "suppressed"))
    wait(driver).until(
        ec.element_to_be_clickable((By.XPATH, "//button[text()='Remove from suppression list']"))
    ).click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "message-notice"), "removed from the suppression"))
    # THEN the list no longer holds it
    assert call(stack, "GET", "/v1/suppressions?address=kim%40example.org")[1]["data"] == []
    # WHEN it is re-sent
    driver.find_element(By.ID, "m-resend").click()
    copy_link = wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#message-notice a")))
    copy_id = copy_link.text
    # THEN the copy is a new message that is delivered now
    assert copy_id != blocked
    wait_for_status(stack, copy_id, {"delivered"})
    copy_link.click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "m-id"), copy_id))
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "m-timeline"), "delivered"))
    # WHEN the scheduled message is cancelled from its page
    open_page(driver, stack, stack.api_key, f"#/messages/{scheduled}")
    wait(driver).until(ec.element_to_be_clickable((By.ID, "m-cancel"))).click()
    # THEN it is cancelled, and the button is gone
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "m-status"), "cancelled"))
    assert call(stack, "GET", f"/v1/messages/{scheduled}")[1]["status"] == "cancelled"
    assert not driver.find_element(By.ID, "m-cancel").is_displayed()


ATTACHMENT = b"%PDF-1.4\n" + bytes(range(256)) * 8


def test_an_inbound_mail_is_read_marked_seen_flagged_moved_and_its_attachment_downloaded(
    console: LocalStack, console_browser: Any
) -> None:
    stack, driver = console, console_browser
    # GIVEN an inbound address that receives a mail with an attachment over SMTP
    assert call(stack, "POST", "/v1/addresses", {"address": "support@example.com"})[0] in (200, 201)
    message = EmailMessage()
    message["From"] = "Ann Example <ann@example.org>"
    message["To"] = "support@example.com"
    message["Subject"] = "Where is order 7?"
    message.set_content("Hello, where is my order?\n")
    message.add_alternative("<p id='q'>Hello, <b>where</b> is my order?</p>", subtype="html")
    message.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="invoice-7.pdf")
    with smtplib.SMTP(stack.inbound.host, stack.inbound.port, timeout=10) as client:
        client.send_message(message, from_addr="ann@example.org", to_addrs=["support@example.com"])
    # WHEN Mailboxes is opened: the Inbox shows one unread message
    open_page(driver, stack, stack.api_key, "#/mailboxes")
    inbox = wait(driver).until(ec.element_to_be_clickable((By.LINK_TEXT, "Inbox")))
    row = inbox.find_element(By.XPATH, "./ancestor::tr")
    assert "support@example.com" in row.text
    assert row.get_attribute("class") == "unread"
    shot(driver, "mailboxes")
    inbox.click()
    wait(driver).until(ec.element_to_be_clickable((By.LINK_TEXT, "Where is order 7?"))).click()
    # THEN the mail reads with its HTML in the sandboxed frame, and reading it marked it seen (the IMAP keyword)
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "mail-state"), "seen"))
    assert text_of(driver, "mail-from") == "ann@example.org"
    assert "where is my order" in text_of(driver, "mail-text")
    wait(driver).until(lambda d: in_frame(d, "mail-html", "Hello, where is my order?"))
    assert driver.find_element(By.ID, "mail-html").get_attribute("sandbox") == ""
    mail_id = driver.current_url.rsplit("/", 1)[-1]
    assert "$seen" in call(stack, "GET", f"/v1/mail/{mail_id}")[1]["keywords"]
    shot(driver, "mail")
    # WHEN its attachment is clicked THEN the browser downloads the attachment's bytes
    driver.find_element(By.XPATH, "//button[starts-with(text(), 'invoice-7.pdf')]").click()
    downloaded = driver.download_dir / "invoice-7.pdf"
    deadline = time.monotonic() + 20
    while not downloaded.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert downloaded.read_bytes() == ATTACHMENT
    # WHEN it is flagged and then moved to Archive
    driver.find_element(By.ID, "mail-flag").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "mail-state"), "flagged"))
    assert "$flagged" in call(stack, "GET", f"/v1/mail/{mail_id}")[1]["keywords"]
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "mail-move")).select_by_visible_text("Archive")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "mbx-name"), "Inbox"))
    # THEN it is in Archive, no longer in the Inbox
    assert call(stack, "GET", f"/v1/mail/{mail_id}")[1]["mailbox"] == "support@example.com:archive"
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "mbx-rows"), "empty"))
    # WHEN it is deleted from Archive THEN it moves to Trash
    open_page(driver, stack, stack.api_key, f"#/mail/{mail_id}")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "mail-subject"), "Where is order 7?"))
    driver.find_element(By.ID, "mail-delete").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "mbx-name"), "Archive"))
    assert call(stack, "GET", f"/v1/mail/{mail_id}")[1]["mailbox"] == "support@example.com:trash"


def wait_for_attempts(stack: LocalStack, hook_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    attempts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        attempts = call(stack, "GET", f"/v1/webhooks/{hook_id}/attempts")[1]["data"]
        if len(attempts) >= count:
            return attempts
        time.sleep(0.2)
    raise AssertionError(f"{hook_id} has {len(attempts)} attempts, not {count}")


def preview_shows(driver: Any, text: str) -> bool:
    return in_frame(driver, "t-preview", text)


def test_a_template_is_edited_with_a_live_preview_errors_at_their_line_saved_and_sent_as_a_test(
    console: LocalStack, console_browser: Any
) -> None:
    stack, driver = console, console_browser
    # GIVEN the built-in order confirmation, previewed with the sample order
    open_page(driver, stack, stack.api_key, "#/templates")
    wait(driver).until(ec.element_to_be_clickable((By.LINK_TEXT, "order_confirmation"))).click()
    wait(driver).until(lambda d: preview_shows(d, "#1042"))
    assert preview_shows(driver, "Linen shirt")
    assert "#1042" in text_of(driver, "t-preview-subject")
    # styled as the mail will be: the layout's CSS, inlined by the renderer, applies inside the sandboxed frame
    driver.switch_to.frame(driver.find_element(By.ID, "t-preview"))
    assert driver.find_element(By.TAG_NAME, "h1").value_of_css_property("font-size") == "22px"
    driver.switch_to.default_content()
    # WHEN a line is added to the HTML THEN the preview shows it
    html = driver.find_element(By.ID, "t-html")
    html.send_keys("\n<p>Thanks for shopping with {{ shop.name }}!</p>")
    wait(driver).until(lambda d: preview_shows(d, "Thanks for shopping with Sample Shop!"))
    shot(driver, "template")
    # WHEN a broken tag is typed on a new line THEN the error names that line, and fixing it clears it
    line = driver.execute_script("return document.getElementById('t-html').value.split('\\n').length") + 1
    html.send_keys("\n{% if %}")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "t-html-error"), f"Line {line}:"))
    assert "invalid" in (html.get_attribute("class") or "")
    for _ in range(len("{% if %}") + 1):
        html.send_keys("\b")
    wait(driver).until(lambda d: text_of(d, "t-html-error") == "")
    # WHEN it is saved THEN the tenant's copy holds the edit
    driver.find_element(By.ID, "t-save").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "t-saved"), "Saved"))
    stored = call(stack, "GET", "/v1/templates/order_confirmation")[1]
    assert stored["builtin"] is False
    assert "Thanks for shopping with" in stored["html"]
    # WHEN a test is sent THEN it is delivered with the rendered preview
    driver.find_element(By.ID, "t-test-from").send_keys("orders@shop.example")
    driver.find_element(By.ID, "t-test-to").send_keys("tester@example.org")
    driver.find_element(By.ID, "t-test").click()
    sent = wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#t-test-result a"))).text
    record = wait_for_status(stack, sent, {"delivered"})
    assert record["subject"].startswith("[test] ")
    assert "#1042" in record["subject"]
    open_page(driver, stack, stack.api_key, "#/templates")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "t-rows"), "order_confirmation"))
    shot(driver, "templates")


def test_suppressions_webhooks_keys_domains_and_overview(console: LocalStack, console_browser: Any) -> None:
    stack, driver = console, console_browser
    # Suppressions: add one, see it, remove it.
    open_page(driver, stack, stack.api_key, "#/suppressions")
    form = wait(driver).until(ec.visibility_of_element_located((By.ID, "s-add")))
    form.find_element(By.NAME, "address").send_keys("gone@example.org")
    form.find_element(By.NAME, "details").send_keys("asked by phone")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "s-rows"), "gone@example.org"))
    assert "manual: asked by phone" in text_of(driver, "s-rows")
    shot(driver, "suppressions")
    row = driver.find_element(By.XPATH, "//tbody[@id='s-rows']/tr[td[text()='gone@example.org']]")
    row.find_element(By.XPATH, ".//button[text()='Remove']").click()
    wait(driver).until(lambda d: "gone@example.org" not in text_of(d, "s-rows"))
    assert call(stack, "GET", "/v1/suppressions?address=gone%40example.org")[1]["data"] == []

    # Webhooks: a subscription whose receiver is down has failed attempts; re-enable it and replay one.
    with socket.socket() as probe:  # a loopback port nobody listens on: every delivery fails at once
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    status, hook = call(
        stack, "POST", "/v1/webhooks", {"url": f"http://127.0.0.1:{dead_port}/hook", "event_types": ["delivered"]}
    )
    assert status == 201, hook
    wait_for_status(stack, send(stack, "hooked@example.org", "Hooked"), {"delivered"})
    attempts = wait_for_attempts(stack, hook["id"], 1)
    assert call(stack, "PATCH", f"/v1/webhooks/{hook['id']}", {"enabled": False})[0] == 200
    open_page(driver, stack, stack.api_key, "#/webhooks")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "w-list"), f"127.0.0.1:{dead_port}"))
    assert "delivered" in text_of(driver, "w-list")
    wait(driver).until(ec.element_to_be_clickable((By.XPATH, "//button[text()='Re-enable']"))).click()
    wait(driver).until(lambda d: not d.find_elements(By.XPATH, "//button[text()='Re-enable']"))
    assert call(stack, "GET", f"/v1/webhooks/{hook['id']}")[1]["enabled"] is True
    replay = wait(driver).until(ec.element_to_be_clickable((By.XPATH, "//button[text()='Replay']")))
    shot(driver, "webhooks")
    replay.click()
    wait(driver).until(lambda d: d.find_elements(By.XPATH, "//button[text()='Queued']"))
    # the replay is one more attempt at the same event
    again = wait_for_attempts(stack, hook["id"], len(attempts) + 1)
    assert again[0]["event_id"] == attempts[-1]["event_id"]


def test_api_keys_domains_and_overview(console: LocalStack, console_browser: Any) -> None:
    stack, driver = console, console_browser
    # API keys: create one with a single scope; its secret is shown once and works; then disable it.
    open_page(driver, stack, stack.api_key, "#/keys")
    form = wait(driver).until(ec.visibility_of_element_located((By.ID, "k-new")))
    form.find_element(By.NAME, "name").send_keys("reporting")
    form.find_element(By.CSS_SELECTOR, "input[value='messages:read']").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    secret = wait(driver).until(ec.visibility_of_element_located((By.ID, "k-secret"))).text
    assert secret.startswith("pr_")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "k-rows"), "reporting"))
    request = urllib.request.Request(stack.api_url + "/v1/me", headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    shot(driver, "keys")
    row = driver.find_element(By.XPATH, "//tbody[@id='k-rows']/tr[td[text()='reporting']]")
    row.find_element(By.XPATH, ".//button[text()='Disable']").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "k-rows"), "disabled"))
    # Domains: the stack's sending domain, its DNS checks with the records to publish.
    open_page(driver, stack, stack.api_key, "#/domains")
    wait(driver).until(ec.element_to_be_clickable((By.XPATH, "//button[text()='Check DNS']"))).click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "d-list"), "spf"))
    assert "shop.example" in text_of(driver, "d-list")
    assert "dmarc" in text_of(driver, "d-list")
    shot(driver, "domains")
    # the new key's secret was shown once: back on API keys, it is nowhere in the page
    open_page(driver, stack, stack.api_key, "#/keys")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "k-rows"), "reporting"))
    assert secret not in driver.page_source
    # Overview: a delivered message shows in the day's and the week's counts.
    delivered = send(stack, "ov@example.org", "Counted")
    wait_for_status(stack, delivered, {"delivered"})
    open_page(driver, stack, stack.api_key, "#/overview")
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "o-counts"), "delivered"))
    counts = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[1].text
        for row in driver.find_elements(By.CSS_SELECTOR, "#o-counts tr")
    }
    assert int(counts["delivered"]) >= 1
    assert text_of(driver, "o-queue") == "0"
    assert text_of(driver, "o-dlq") == "0"
    assert "review at 5 %" in text_of(driver, "o-rates")
    assert not driver.find_element(By.ID, "o-dashboard").is_displayed()  # a local stack has no AWS dashboard
    shot(driver, "overview")


def test_a_messages_read_key_neither_sees_nor_reaches_the_other_pages(
    console: LocalStack, console_browser: Any
) -> None:
    stack, driver = console, console_browser
    reader = services().keys.create(name="reader", scopes=frozenset({Scope.MESSAGES_READ}), tenant="default")
    # GIVEN a key with only messages:read, signed in
    open_page(driver, stack, reader, "#/activity")
    wait(driver).until(ec.visibility_of_element_located((By.ID, "activity")))
    # THEN the navigation offers only its pages
    visible = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#nav a") if a.is_displayed()]
    assert visible == ["Overview", "Activity"]
    # and each other page, reached by its address, is refused without being shown
    for page, scope in [
        ("#/mailboxes", "mailbox:read"),
        ("#/templates", "templates:read"),
        ("#/templates/order_confirmation", "templates:read"),
        ("#/suppressions", "suppressions:read"),
        ("#/webhooks", "webhooks:manage"),
        ("#/keys", "keys:manage"),
        ("#/domains", "domains:read"),
    ]:
        driver.execute_script("location.hash = arguments[0]", page)
        wait(driver).until(ec.text_to_be_present_in_element((By.ID, "denied-text"), f"'{scope}'"))
        for section in ("mailboxes", "templates", "template", "suppressions", "webhooks", "keys", "domains"):
            assert not driver.find_element(By.ID, section).is_displayed()
    # and the API refuses the key on those routes whatever the page does
    for path in ("/v1/mailboxes", "/v1/templates", "/v1/suppressions", "/v1/webhooks", "/v1/keys", "/v1/domains"):
        request = urllib.request.Request(stack.api_url + path, headers={"Authorization": f"Bearer {reader}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403, path
    wait(driver).until(ec.element_to_be_clickable((By.ID, "sign-out"))).click()
