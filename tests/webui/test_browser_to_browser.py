"""J3 between two browsers: a logged-in page sends files to a page on another device (here another
browser context, with no login), introduced by the appliance's signaling; the bytes go page to page
over WebRTC and never touch the appliance's disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.integration.harness import Daemon, random_file, sha256_of
from tests.webui.browser import PageWatch, login

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def test_a_page_sends_a_file_to_another_browser_by_code_and_it_arrives_verified(
        browser: Browser, watch: PageWatch, daemon: Daemon, tmp_path: Path) -> None:
    sender = watch.page
    source = tmp_path / "slides.pdf"
    digest = random_file(source, 6 * MiB + 5)
    login(sender, daemon)
    sender.get_by_role("link", name="Send").click()
    sender.locator("#p2p-files").set_input_files(source)
    code_box = sender.locator("#p2p-code .code")
    expect(code_box).to_be_visible(timeout=30_000)
    code = code_box.get_attribute("data-code")
    assert code is not None and len(code) == 6 and code.isdigit()
    expect(sender.locator("#p2p-code a")).to_have_attribute("href", f"{daemon.base}/r/{code}")

    other = browser.new_context()
    try:
        receiver = PageWatch(other.new_page())
        receiver.page.add_init_script("delete window.showSaveFilePicker; delete window.showDirectoryPicker;")
        receiver.page.goto(f"{daemon.base}/r/{code}")
        receiver.page.locator("#receive-start").click()
        expect(receiver.page.locator("#receive-files li .name")).to_have_text("slides.pdf", timeout=30_000)
        receiver.page.locator("#receive-memory").click()
        status = receiver.page.locator("#receive-status")
        expect(status).to_have_attribute("data-state", "verified", timeout=60_000)
        with receiver.page.expect_download() as download:
            receiver.page.locator("#receive-downloads a").click()
        saved = tmp_path / "received.pdf"
        download.value.save_as(saved)
        assert sha256_of(saved) == digest, "the receiving page got other bytes than were sent"
        assert not receiver.errors and not receiver.dialogs, (receiver.errors, receiver.dialogs)
    finally:
        other.close()

    expect(sender.locator("#p2p-status")).to_have_attribute("data-state", "done", timeout=30_000)
    expect(sender.locator("#p2p-status")).to_contain_text("the receiver verified every SHA-256")
    # Page to page: the appliance held nothing (no share, no inbox file).
    assert daemon.api("GET", "/api/v1/shares").json() == []
    assert not any(f["path"] == "slides.pdf" for f in daemon.api("GET", "/api/v1/inbox").json())
