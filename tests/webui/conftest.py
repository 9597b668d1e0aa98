"""Web UI fixtures: Playwright for Python driving Debian's /usr/bin/chromium (never a browser
download) against a real daemon on loopback. In CI a missing chromium or playwright fails; elsewhere
these tests are skipped, saying why.

Playwright's sync API is used from plain (non-async) test functions: pytest-trio runs only the
async tests in trio, so nothing else owns the thread's event loop when Playwright starts its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require_binary

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:
    if IN_CI:
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

from tests.integration.harness import Daemon
from tests.webui.browser import ARTIFACTS, CHROMIUM_ARGS, PageWatch


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_binary("chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                                              chromium_sandbox=False)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module's tests; it must stop cleanly (exit 0) at the end."""
    # An upload whose client vanished (its network gone) is given up after 3 s instead of 60.
    running = Daemon(tmp_path_factory.mktemp("webui") / "appliance", DOORSTEP_HTTP_UPLOAD_STALL="3").start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log_tail()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def watch(browser: Browser) -> Iterator[PageWatch]:
    """A fresh context (no cookies) and page, watched; fails the test if the page raised an
    uncaught error or opened a dialog."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = PageWatch(context.new_page())
    opened.page.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        context.close()
    assert not opened.dialogs, f"the page opened dialogs: {opened.dialogs}"
    assert not opened.errors, f"the page raised: {opened.errors}"


@pytest.fixture
def page(watch: PageWatch) -> Page:
    return watch.page
