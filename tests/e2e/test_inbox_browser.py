"""The local inbox page in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against a real `mailsage serve`. It asserts what a person sees: the rows and
their order, a message's framed HTML that did not run its script, the text tab, search narrowing
the list, new mail appearing without a reload, delete all emptying it. A screenshot of the page is
kept in the test's tmp directory.

Without chromium and chromedriver (`apt-get install chromium chromium-driver`, as .ci/run does) the
test is skipped and says so."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LocalServer
from tests.e2e.test_inbox import HOSTILE_HTML, send

pytestmark = pytest.mark.e2e

# Where Debian puts them; CHROMIUM_PATH / CHROMEDRIVER_PATH name others.
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_PATH") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_SECONDS = 30  # a liveness bound for what the page shows, not a timing
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [
        name
        for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
        if not Path(path).exists()
    ]
    if missing:
        pytest.skip(
            f"no {' or '.join(missing)} on this machine: the inbox's browser test needs Debian's "
            "chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Root (CI) needs --no-sandbox; the page's own iframe sandbox is Blink's and stays in force.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def rows(driver: Any) -> list[dict[str, str]]:
    """The rows as shown, read in one script (the page may re-render them between two reads)."""
    script = """
        return Array.from(document.querySelectorAll('#messages tbody tr.message')).map((tr) => {
            const text = (name) => tr.querySelector('td.' + name).textContent.trim();
            return {to: text('to'), subject: text('subject'), campaign: text('campaign'), status: text('status')};
        });"""
    return list(driver.execute_script(script))


def until(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(condition, message=what)


def subjects(driver: Any) -> list[str]:
    return [r["subject"] for r in rows(driver)]


def test_a_person_reads_searches_sees_new_mail_and_empties_the_inbox(
    browser: Any, server: LocalServer, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    # Given three messages sent one after the other, the last in a campaign and with hostile HTML
    send(server, "ann@example.com", "Welcome, Ann")
    send(server, "bob@example.com", "Your invoice")
    send(server, "cat@example.com", "Spring sale", html=HOSTILE_HTML, campaign_id="spring")

    # When a person opens the inbox
    browser.get(server.url + "/inbox")

    # Then they see the three, newest first, with recipient, campaign and status
    assert subjects(browser) == ["Spring sale", "Your invoice", "Welcome, Ann"]
    assert [r["to"] for r in rows(browser)] == ["cat@example.com", "bob@example.com", "ann@example.com"]
    assert rows(browser)[0]["campaign"] == "spring"
    until(browser, lambda d: all(r["status"] == "delivered" for r in rows(d)), "every row delivered")

    # When they open the newest message: see read_the_message
    read_the_message(browser, "Spring sale", tmp_path / "message.png")

    # When they go back and search for a recipient: see search_for_bob
    search_for_bob(browser)

    # When a new message arrives while the page is open
    send(server, "dan@example.com", "Fresh off the press")

    # Then it appears on top without a reload
    until(browser, lambda d: subjects(d)[:1] == ["Fresh off the press"], "the new message on top")
    assert len(rows(browser)) == 4
    assert browser.execute_script("return window.inboxMarker") == "not reloaded"
    assert "4 messages" in browser.find_element(By.ID, "count").text

    # And a screenshot of what they see is kept
    shot = tmp_path / "inbox.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 10_000

    # When they delete all and confirm
    browser.find_element(By.CSS_SELECTOR, "#delete-all button").click()
    until(browser, lambda d: d.switch_to.alert, "the confirmation").accept()

    # Then the inbox is empty, on the page and on disk
    until(browser, lambda d: d.find_element(By.ID, "empty").is_displayed(), "the empty inbox")
    assert rows(browser) == []
    assert server.outbox() == []


def read_the_message(browser: Any, subject: str, screenshot: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.LINK_TEXT, subject).click()
    until(browser, lambda d: d.find_elements(By.ID, "html-body"), "the message page")

    # Then its HTML is in an iframe sandboxed without scripts, where its script did not run
    frame = browser.find_element(By.ID, "html-body")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    assert browser.find_element(By.ID, "greet").text == "Hi Ann"
    browser.switch_to.default_content()
    # and the text tab shows the text part
    text = browser.find_element(By.ID, "text-body")
    assert not text.is_displayed()
    browser.find_element(By.CSS_SELECTOR, "[data-tab=text]").click()
    assert text.is_displayed() and text.text == f"Text of {subject}"
    browser.find_element(By.CSS_SELECTOR, "[data-tab=html]").click()
    assert browser.save_screenshot(str(screenshot))


def search_for_bob(browser: Any) -> None:
    """From a message back to the inbox of three, then a search: the page is never reloaded."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.LINK_TEXT, "← Inbox").click()
    until(browser, lambda d: len(rows(d)) == 3, "the inbox again")
    browser.execute_script("window.inboxMarker = 'not reloaded'")
    search = browser.find_element(By.ID, "q")
    search.send_keys("bob@")

    # Then only that recipient's message is listed; clearing the search lists all again
    until(browser, lambda d: subjects(d) == ["Your invoice"], "search narrowing to bob")
    search.clear()
    search.send_keys(" ")  # an input event: an empty search
    until(browser, lambda d: len(rows(d)) == 3, "all three after clearing the search")
