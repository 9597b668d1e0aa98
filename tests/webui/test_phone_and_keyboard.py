"""The page on a phone (390x844: every view fits the width, nothing scrolls sideways) and from the
keyboard alone; the login (a wrong token is refused, logging out ends the session); the share link
page; the security headers on everything the UI serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import nacl.pwhash
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration.harness import Daemon
from tests.webui.browser import PageWatch, login, no_horizontal_scroll

pytestmark = pytest.mark.integration

PHONE = {"width": 390, "height": 844}
VIEWS = ["dashboard", "send", "inbox", "shares", "outbox", "devices", "settings"]
LONG_NAME = "a-very-long-file-name-without-any-spaces-that-must-wrap-on-a-phone-" * 3 + ".pdf"


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    watch = PageWatch(page)
    try:
        yield page
    finally:
        context.close()
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)


def test_every_view_fits_a_phone_without_sideways_scrolling(phone: Page, daemon: Daemon, artifacts: Path) -> None:
    assert daemon.api("PUT", f"/api/v1/shares/{quote(LONG_NAME)}", content=b"%PDF-1.4").status_code == 201
    assert daemon.api("PUT", f"/api/v1/inbox/deep/{'folder-' * 12}/{quote(LONG_NAME)}",
                      content=b"x" * 4096).status_code == 201
    login(phone, daemon)
    for view in VIEWS:
        phone.goto(f"{daemon.base}/#/{view}")
        expect(phone.locator("main h1")).to_be_visible()
        phone.wait_for_load_state("networkidle")
        widths = no_horizontal_scroll(phone)
        assert widths["document"] <= widths["viewport"] and widths["body"] <= widths["viewport"], (view, widths)
        if view in ("dashboard", "shares", "inbox"):
            phone.screenshot(path=artifacts / f"phone-{view}.png", full_page=True)


def test_keyboard_only_login_and_a_share_text_then_logout(page: Page, daemon: Daemon) -> None:
    page.goto(daemon.base + "/")
    expect(page.locator("#login-secret")).to_be_focused()
    page.keyboard.type("not-the-token")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_have_text("That is not the token or password.")
    expect(page.locator("#nav")).to_be_hidden()

    page.locator("#login-secret").fill("")
    login(page, daemon)
    # Navigation links and forms work with Enter and Tab.
    page.locator("nav a", has_text="Shares").focus()
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_have_text("Shares")
    page.locator("#text-share").focus()
    page.keyboard.type("the wifi password is hunter2")
    page.keyboard.press("Tab")
    expect(page.locator("#text-share-name")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    card = page.locator("#share-list > li", has_text="note.txt")
    expect(card).to_be_visible()
    expect(card.locator(".code")).to_have_text(_spaced_code(daemon, "note.txt"))

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login-secret")).to_be_visible()
    cookies = page.context.cookies()
    session = httpx.get(daemon.base + "/api/v1/session", cookies={c["name"]: c["value"] for c in cookies})
    assert session.status_code == 401, "logging out ends the session on the appliance too"


def test_the_web_password_logs_in_too(page: Page, tmp_path: Path) -> None:
    password_file = tmp_path / "web-password"
    password_file.write_bytes(nacl.pwhash.argon2id.str(b"correct horse battery staple",
                                                       opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
                                                       memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN))
    daemon = Daemon(tmp_path / "with-password", DOORSTEP_HTTP_PASSWORD_FILE=str(password_file)).start()
    try:
        page.goto(daemon.base + "/")
        page.get_by_label("the password").check()
        expect(page.locator("#login-secret")).to_have_attribute("autocomplete", "current-password")
        page.locator("#login-secret").fill("wrong horse")
        page.keyboard.press("Enter")
        expect(page.locator("#login-error")).to_have_text("That is not the token or password.")
        page.locator("#login-secret").fill("correct horse battery staple")
        page.keyboard.press("Enter")
        expect(page.locator("#connection")).to_have_text("live")
        expect(page.locator("main h1")).to_have_text("Dashboard")
    finally:
        assert daemon.stop() == 0, daemon.log_tail()


def _spaced_code(daemon: Daemon, name: str) -> str:
    code = next(s["code"] for s in daemon.api("GET", "/api/v1/shares").json() if s["name"] == name)
    return f"{code[:3]} {code[3:]}"


def test_the_share_link_opens_the_page_for_that_code(page: Page, daemon: Daemon) -> None:
    share = daemon.api("PUT", "/api/v1/shares/link.txt", content=b"by link").json()
    page.goto(share["url"])
    expect(page.locator("main h1")).to_have_text("A share for you")
    expect(page.locator("main pre")).to_have_text(f"doorstep receive {share['code']}")
    expect(page.get_by_role("link", name="Log in to manage this appliance")).to_be_visible()


def test_the_ui_is_served_without_login_with_strict_security_headers(daemon: Daemon) -> None:
    for path in ("/", "/app.css", "/js/main.js", "/r/123456"):
        response = httpx.get(daemon.base + path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(daemon.base + "/r/123456").text == httpx.get(daemon.base + "/").text
    assert httpx.get(daemon.base + "/", headers={"Host": "evil.example"}).status_code == 403, "Host allowlist"
    assert httpx.get(daemon.base + "/nothing-here.js").status_code == 404
