"""End-to-end tests: a real browser (Playwright driving the system Chromium) against a live server."""
