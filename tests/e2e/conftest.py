"""Browser fixtures: the system Chromium under Playwright, skipped with a reason where either is missing."""

import contextlib
import os
import shutil
from pathlib import Path

import pytest

# Set by .ci/run: there the browser tests must run, so a missing Chromium or playwright fails them.
REQUIRED = os.environ.get("CRM_E2E") == "1" or os.environ.get("CRM_E2E_BROWSER") == "1"
CHROMIUM = os.environ.get("CRM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless and offline: no sandbox (root in a container), and none of Chromium's own network chatter.
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
TIMEOUT_MS = 20_000


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium; CRM_CHROMIUM=<path> to use another)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the playwright package (pip install -r requirements-dev.txt; no `playwright install` needed)"
    return None


@pytest.fixture
def open_page():
    """`with open_page() as page:` a fresh Chromium tab, closed with Playwright at the end of the block.

    Playwright's sync API runs an asyncio loop in this thread while it is started: Django then
    refuses ORM calls here (SynchronousOnlyOperation), and with DJANGO_ALLOW_ASYNC_UNSAFE they
    would run on a stray connection of their own that is never closed (it blocks dropping the test
    database on PostgreSQL). So tests create their data before the block and check the database
    after it; the live server answers the browser from its own threads.
    """
    reason = missing_browser()
    if reason:
        if REQUIRED:
            pytest.fail(f"CRM_E2E=1 but the browser tests cannot run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    @contextlib.contextmanager
    def opener():
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = chromium.new_context(viewport={"width": 1400, "height": 900})
                context.set_default_timeout(TIMEOUT_MS)
                yield context.new_page()
            finally:
                chromium.close()

    return opener
