"""Driving the web UI in Debian's Chromium: launch options and the steps tests share."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Dialog, Page, expect

from tests.integration.harness import Daemon

__all__ = ["CHROMIUM_ARGS", "ARTIFACTS", "PageWatch", "login", "throttle_uploads", "no_horizontal_scroll"]

# Headless Debian chromium on a closed network (see the machine notes): no sandbox (root), no GPU,
# no QUIC, and nothing that phones home at start. Playwright adds --headless and a fresh, empty
# --user-data-dir of its own for every launch.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
"""tests/artifacts/ (git-ignored): screenshots kept for people to look at."""


def login(page: Page, daemon: Daemon, *, path: str = "/") -> None:
    """Open the page, log in with the API token from the keyboard, wait for the dashboard."""
    page.goto(daemon.base + path)
    secret = page.locator("#login-secret")
    expect(secret).to_be_focused()
    page.keyboard.type(daemon.token)
    page.keyboard.press("Enter")
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("#connection")).to_have_text("live")


def throttle_uploads(page: Page, bytes_per_second: int | None) -> None:
    """Limit what the page uploads (Chromium's network emulation); None lifts the limit."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": -1 if bytes_per_second is None else bytes_per_second,
    })


def no_horizontal_scroll(page: Page) -> dict[str, int]:
    """The page's widths: ``{"viewport", "document", "body"}``; equal when nothing scrolls sideways."""
    return page.evaluate("""() => ({
        viewport: window.innerWidth,
        document: document.documentElement.scrollWidth,
        body: document.body.scrollWidth,
    })""")


class PageWatch:
    """What a page did that a test must notice: dialogs (alert, confirm, prompt) and uncaught errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Dialog) -> None:  # dismissed, so a page cannot hang the test; recorded, so it fails
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()
