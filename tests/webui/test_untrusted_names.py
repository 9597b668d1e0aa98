"""Names chosen by others (a share's name, a file's path, a text's name) show as text and run
nothing: no dialog opens, and no element the name spells is ever created."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.integration.harness import Daemon
from tests.webui.browser import PageWatch, login

pytestmark = pytest.mark.integration

HOSTILE = "<img src=x onerror=alert(1)>.txt"
HOSTILE_TEXT_NAME = '<svg onload=alert(2)><b>bold &amp; "quoted\' .txt'
HOSTILE_PATH = "<script>alert(3)</script>/<img src=x onerror=alert(4)>.bin"


def _no_injected_elements(page: Page) -> None:
    assert page.locator("img[src='x']").count() == 0, "a name became an <img> element"
    assert page.locator("main script, main svg, main b").count() == 0, "a name became markup"


def test_hostile_names_show_as_text_and_run_nothing(watch: PageWatch, daemon: Daemon) -> None:
    page = watch.page
    made = daemon.api("PUT", f"/api/v1/shares/{quote(HOSTILE, safe='')}", content=b"harmless bytes")
    assert made.status_code == 201, made.text
    assert made.json()["name"] == HOSTILE
    text = daemon.api("POST", "/api/v1/shares/text", json={"text": "<script>alert(5)</script>", "name": HOSTILE_TEXT_NAME})
    assert text.status_code == 201, text.text
    uploaded = daemon.api("PUT", "/api/v1/inbox/" + "/".join(quote(p, safe="") for p in HOSTILE_PATH.split("/")),
                          content=b"x" * 100)
    assert uploaded.status_code == 201, uploaded.text

    page.goto(daemon.base + "/")
    page.evaluate("() => alert('control')")  # the watch does see dialogs
    assert watch.dialogs == ["alert: control"]
    watch.dialogs.clear()

    login(page, daemon, path="/#/shares")
    shares = page.locator("#share-list")
    expect(shares.get_by_text(HOSTILE, exact=True)).to_be_visible()
    expect(shares.get_by_text(HOSTILE_TEXT_NAME, exact=True)).to_be_visible()
    qr = page.locator("#share-list > li", has_text=HOSTILE).locator(".qr img")
    expect(qr).to_have_attribute("src", f"/api/v1/shares/{made.json()['share_id']}/qr.svg")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    _no_injected_elements(page)

    page.get_by_role("link", name="Dashboard").click()  # the offered path, as the journal keeps it
    expect(page.locator("#transfer-history").get_by_text(HOSTILE_PATH, exact=True)).to_be_visible()
    _no_injected_elements(page)

    page.get_by_role("link", name="Inbox").click()  # the name the inbox gave it (sanitized; "/" separates)
    expect(page.locator("#inbox-files li")).to_contain_text("_script_alert(3)_/script_/_img src=x onerror=alert(4)_.bin")
    _no_injected_elements(page)

    page.wait_for_timeout(300)  # an onerror/onload handler would have fired by now
    assert watch.dialogs == [] and watch.errors == []
