"""The API explorer on the local runtime: `mailsage serve` answers `/openapi.json` and `/docs` (and
the page's files) over HTTP without an API key, and Swagger UI, in a real headless chromium, shows
every operation of the document and tries one with the key it was given. Skipped without chromium
(see tests/e2e/test_inbox_browser.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import LocalServer
from tests.e2e.test_inbox_browser import PNG_MAGIC, browser, until  # noqa: F401 (fixture)
from tests.unit.test_openapi import COMMITTED

pytestmark = pytest.mark.e2e


def test_the_document_and_the_explorer_are_served_without_a_key(server: LocalServer) -> None:
    # Given a running `mailsage serve`, whose banner points at the explorer, and no API key
    assert f"API docs:   {server.url}/docs" in server.banner
    # When the document is fetched
    document = requests.get(server.url + "/openapi.json", timeout=30)
    # Then it is the committed one
    assert document.status_code == 200
    assert document.headers["Content-Type"].startswith("application/json")
    assert document.json() == json.loads(COMMITTED.read_text())
    # And the page and its files are served with their types, the rest of the API still needs a key
    expected = {
        "/docs": "text/html",
        "/docs/swagger-ui.css": "text/css",
        "/docs/swagger-ui-bundle.js": "text/javascript",
        "/docs/swagger-init.js": "text/javascript",
    }
    for path, content_type in expected.items():
        reply = requests.get(server.url + path, timeout=30)
        assert reply.status_code == 200, path
        assert reply.headers["Content-Type"].startswith(content_type), path
    assert requests.get(server.url + "/api/v1/templates", timeout=30).status_code == 401


def test_a_person_sees_every_operation_and_tries_one(
    browser: Any,  # noqa: F811 (the fixture imported above)
    server: LocalServer,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    operations = sum(len(ops) for ops in json.loads(COMMITTED.read_text())["paths"].values())
    # When a person opens the explorer
    browser.get(server.url + "/docs")

    # Then Swagger UI renders every operation of the document, with its summary
    until(
        browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) == operations, "all operations"
    )
    summaries = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-description")]
    assert "Send one email" in summaries and "Check the API key" in summaries

    # When they authorize with their key and try GET /v2/ping
    browser.find_element(By.CSS_SELECTOR, "button.authorize").click()
    field = until(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, ".auth-container input"), "the key field"
    )
    field.send_keys(server.key)
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    browser.find_element(By.CSS_SELECTOR, "button.btn-done").click()
    ping = browser.find_element(By.ID, "operations-default-ping_v2_ping_get")
    ping.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    until(browser, lambda d: ping.find_element(By.CSS_SELECTOR, "button.try-out__btn"), "Try it out").click()
    until(browser, lambda d: ping.find_element(By.CSS_SELECTOR, "button.execute"), "Execute").click()

    # Then the live reply is shown: 200 and "pong"
    until(browser, lambda d: "Server response" in ping.text, "the live reply")
    shown = ping.text.split("Server response", 1)[1]
    assert "\n200\n" in shown and '"message": "pong"' in shown

    # And nothing the page needed was blocked or missing (the console would say so)
    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert problems == []
    shot = tmp_path / "docs.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(PNG_MAGIC)
