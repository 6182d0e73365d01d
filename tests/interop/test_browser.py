"""A real browser against the examples: Chromium (Debian's package, driven by Playwright) loads
examples/chat.py's Flask page, opens the WebSocket to the mounted Starlette chat, and shows a
message that a plain POST to a Flask view published; and it loads examples/django_site.py's admin,
styled by CSS served with --static. Skipped with a reason where no browser can be had;
CI installs one and sets REQUIRE_BROWSER_TESTS, and then a missing one is an error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Optional

import httpx
import pytest

from tests.proc import ROOT, CLIServer


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


def test_a_browser_loads_the_django_admin_styled_from_static(tmp_path):
    """examples/django_site.py after collectstatic, with --static: the admin's login page loads
    its stylesheets from the loop (hashed names, immutable) and the browser applies them."""
    env = {"DJANGO_STATIC_ROOT": str(tmp_path / "staticfiles")}
    collected = subprocess.run(
        [sys.executable, "-m", "examples.django_site", "collectstatic", "--noinput"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    static = f"/static={tmp_path / 'staticfiles'}"
    with CLIServer("examples.django_site:app", "--static", static, "--port", "0", env=env) as srv:
        srv.wait_listening()
        base = f"http://127.0.0.1:{srv.port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                served = []
                page.on("response", lambda r: served.append((r.url, r.status, r.headers.get("cache-control"))))
                page.goto(base + "/admin/login/")
                sheets = page.evaluate(
                    "() => [...document.styleSheets].filter(s => s.href && s.href.includes('/static/admin/css/'))"
                    ".map(s => s.cssRules.length)"
                )
                assert sheets and all(rules > 0 for rules in sheets)  # each loaded, and parsed
                header = page.evaluate("() => getComputedStyle(document.querySelector('#header')).backgroundColor")
                assert header not in ("", "rgba(0, 0, 0, 0)")  # the admin's header colour, not none
                css = [(url, status, cache) for url, status, cache in served if "/static/admin/css/" in url]
                assert css and all(status == 200 for _, status, _ in css)
                assert all(cache == "public, max-age=31536000, immutable" for _, _, cache in css)
            finally:
                browser.close()
