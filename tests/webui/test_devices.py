"""Paired devices from the page: offer a pairing code that another appliance joins, compare the
safety words, rename (to a hostile name, shown as text), revoke and approve again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.integration.harness import Daemon
from tests.webui.browser import login

pytestmark = pytest.mark.integration

HOSTILE_NAME = "<img src=x onerror=alert('pwned')>"


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path / "other").start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log_tail()


def _device(daemon: Daemon, device_id: str) -> dict:
    return daemon.api("GET", f"/api/v1/devices/{device_id}").json()


def test_pair_from_the_page_then_rename_revoke_and_approve(page: Page, daemon: Daemon, other: Daemon) -> None:
    login(page, daemon, path="/#/devices")
    expect(page.locator("#device-list")).to_be_empty()
    page.get_by_role("button", name="Offer a pairing code").click()
    code = page.locator(".pairing-offer .code").inner_text().replace(" ", "")
    assert code.isdigit() and len(code) == 6

    joined = other.api("POST", "/api/v1/pair", json={"code": code, "signal": daemon.signal_url})
    assert joined.status_code == 200, joined.text + other.log_tail()
    seen_there = joined.json()["id"]  # the page's appliance, as the other one knows it
    mine = {d["id"]: d for d in daemon.api("GET", "/api/v1/devices").json()}
    assert len(mine) == 1
    (device_id, device), = mine.items()
    assert seen_there != device_id

    card = page.locator("#device-list > li")
    expect(card).to_have_count(1)  # arrived by the event stream, no reload
    words = " ".join(device["safety_words"])
    expect(card.locator(".words")).to_have_text(f"Safety words: {words}")
    assert _device(other, seen_there)["safety_words"] == device["safety_words"], "both sides show the same words"

    card.get_by_role("button", name="Rename").click()
    name = card.get_by_label("Name")
    expect(name).to_be_focused()
    name.fill(HOSTILE_NAME)
    name.press("Enter")
    expect(card.locator(".name")).to_have_text(HOSTILE_NAME)
    assert _device(daemon, device_id)["name"] == HOSTILE_NAME
    assert page.locator("img[src='x']").count() == 0

    revoke = card.get_by_role("button", name="Revoke")
    revoke.click()
    expect(revoke).to_have_text("Really revoke?")  # asks on the button, not in a dialog
    revoke.click()
    expect(card.locator(".badge")).to_have_text("revoked")
    assert _device(daemon, device_id)["status"] == "revoked"

    card.get_by_role("button", name="Approve").click()
    expect(card.locator(".badge")).to_have_text("approved")
    assert _device(daemon, device_id)["status"] == "approved"
