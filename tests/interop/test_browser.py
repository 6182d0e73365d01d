"""A real browser against examples/chat.py: Chromium (Debian's package, driven by Playwright)
loads the Flask page, opens the WebSocket to the mounted Starlette chat, and shows a message that
a plain POST to a Flask view published. Skipped with a reason where no browser can be had;
CI installs one and sets REQUIRE_BROWSER_TESTS, and then a missing one is an error."""

from __future__ import annotations

import os
import shutil
from typing import Optional

import httpx
import pytest

from tests.proc import CLIServer


def _chromium() -> Optional[str]:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - CI installs it
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = _chromium()
MISSING = "playwright is not installed" if sync_playwright is None else None
if MISSING is None and CHROMIUM is None:
    MISSING = "no Chromium (apt-get install chromium)"
if MISSING and os.environ.get("REQUIRE_BROWSER_TESTS"):
    raise RuntimeError(f"REQUIRE_BROWSER_TESTS is set (as in CI) but {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def test_a_browser_sees_what_a_flask_post_published_over_the_websocket():
    with CLIServer("examples.chat:app", "--mount", "/ws=examples.chat:chat_app", "--port", "0") as srv:
        srv.wait_listening()
        base = f"http://127.0.0.1:{srv.port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(base + "/")
                page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=15000)
                answer = httpx.post(base + "/publish", data={"text": "hello from Flask"}, timeout=10)
                assert answer.json() == {"delivered": 1}
                page.wait_for_selector("#messages li", timeout=15000)
                assert page.inner_text("#messages li") == "hello from Flask"
                page.fill("#text", "typed in the browser")  # and the other way: the page's own socket
                page.click("button")
                page.wait_for_function("document.querySelectorAll('#messages li').length === 2", timeout=15000)
                assert page.inner_text("#messages li:nth-child(2)") == "typed in the browser"
            finally:
                browser.close()
