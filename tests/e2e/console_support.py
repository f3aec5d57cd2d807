"""What the console's browser tests (tests/e2e/test_console.py: sign-in and the people who
approve; tests/e2e/test_console_operations.py: the people who operate) share: Debian's
Chromium driven by Playwright, a page per test that fails it on a JavaScript error or a
Content-Security-Policy violation, signing in, and the definitions the tests publish.

A test module takes the fixtures by importing `console_browser` and `console_page` (the
fixtures `browser` and `page`): one browser per module, like the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.patterns_support import routes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "the console's browser tests need Debian's Chromium at /usr/bin/chromium: run "
    "`make chromium` as root (apt-get install -y --no-install-recommends chromium)"
)
XSS = "<img src=x onerror=\"window.__xss='fired'\">"
TIMEOUT_MS = 15_000

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]
    expect = None  # type: ignore[assignment]


@pytest.fixture(scope="module", name="browser")
def console_browser() -> Iterator[Browser]:
    missing = None
    if sync_playwright is None:
        missing = "playwright is not installed (pip install -e '.[test]')"
    elif not Path(CHROMIUM).exists():
        missing = INSTALL_HINT
    if missing:
        if os.environ.get("CI"):  # in CI `make test` installs both: a skip would hide it
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(name="page")
def console_page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    troubles: list[str] = []
    opened.on("pageerror", lambda error: troubles.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            troubles.append(
                f"console {message.type} at {message.location} on {opened.url}: {message.text[:60]}"
            )
            if message.type == "error" and "status of 4" not in message.text
            else None
        ),
    )
    try:
        yield opened
    finally:
        context.close()
    assert troubles == [], troubles


def sign_in(page: Page, key: str = "k-acme") -> None:
    page.goto("/console")
    page.get_by_label("Key or token").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#identity-tenant")).to_be_visible()


def approval_definition(name: str, task_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "review",
                "type": "approval",
                "name": task_name,
                "approver_role": "manager",
                "sla_hours": 24,
                "result_var": "decision",
                "form": {
                    "type": "object",
                    "required": ["cost_center"],
                    "properties": {"cost_center": {"type": "string", "maxLength": 20}},
                },
            },
            {"id": "done", "type": "end"},
            {"id": "refused", "type": "end", "status": "failed"},
        ],
        "routes": routes("review>done:approved review>refused:rejected"),
    }


def user_task_definition(name: str, task_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "note", "type": "set", "variables": {"note": "input.note"}},
            {
                "id": "profile",
                "type": "user_task",
                "name": task_name,
                "role": "hr",
                "outcomes": ["submitted", "withdrawn"],
                "result_var": "profile",
                "form": {
                    "type": "object",
                    "required": ["full_name"],
                    "properties": {
                        "full_name": {"type": "string", "maxLength": 100},
                        "age": {"type": "integer", "minimum": 18},
                    },
                },
            },
            {"id": "done", "type": "end"},
        ],
        "routes": routes("note>profile profile>done"),
    }


def open_task_row(page: Page, task_name: str) -> None:
    page.goto("/console#/inbox")
    page.get_by_role("link", name=task_name, exact=True).click()
    expect(page.get_by_role("heading", name=task_name, exact=True)).to_be_visible()
