"""Browser fixtures: the system Chromium under Playwright (the `browser` marker checks both are there)."""

import contextlib

import pytest

from tests.reachable import CHROMIUM

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


@pytest.fixture
def open_page():
    """`with open_page() as page:` a fresh Chromium tab, closed with Playwright at the end of the block.

    Playwright's sync API runs an asyncio loop in this thread while it is started: Django then
    refuses ORM calls here (SynchronousOnlyOperation), and with DJANGO_ALLOW_ASYNC_UNSAFE they
    would run on a stray connection of their own that is never closed (it blocks dropping the test
    database on PostgreSQL). So tests create their data before the block and check the database
    after it; the live server answers the browser from its own threads.
    """
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
