"""J3 in a real browser: log in with the token, send files from the page, and they land in the
inbox verified, while the dashboard shows the transfer live (progress, speed, ETA)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.integration.harness import Daemon, random_file, sha256_of
from tests.webui.browser import login, throttle_uploads

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
UPLOAD_RATE = 5 * MiB
"""The page's uploads are throttled to this in the first test, so the dashboard is seen mid-transfer."""


def test_a_20_mib_file_sent_from_the_page_lands_verified_and_the_dashboard_shows_it_live(
        page: Page, daemon: Daemon, tmp_path: Path, artifacts: Path) -> None:
    source = tmp_path / "random 20MiB.bin"
    digest = random_file(source, 20 * MiB)
    login(page, daemon)

    page.get_by_role("link", name="Send").click()
    throttle_uploads(page, UPLOAD_RATE)
    started = time.monotonic()
    page.locator("#send-files").set_input_files(source)
    expect(page.locator("#upload-queue li").first).to_contain_text("random 20MiB.bin")

    # Uploads go on while the person looks at other views: the dashboard, fed by the event stream.
    page.get_by_role("link", name="Dashboard").click()
    card = page.locator("#active-transfers li", has_text="random 20MiB.bin")
    expect(card).to_be_visible()
    expect(card.locator(".numbers")).to_contain_text("/s")  # a speed: the daemon measured it
    expect(card.locator(".numbers")).to_contain_text("left")  # and an ETA
    progress = card.locator("progress")
    page.wait_for_function("p => p.value > 0 && p.value < p.max", arg=progress.element_handle())
    page.screenshot(path=artifacts / "dashboard.png", full_page=True)

    done = page.locator("#transfer-history li", has_text="random 20MiB.bin")
    expect(done).to_be_visible(timeout=60_000)
    expect(done.locator(".badge")).to_have_text("done")
    elapsed = time.monotonic() - started
    throttle_uploads(page, None)

    landed = daemon.inbox / "random 20MiB.bin"
    assert landed.is_file(), sorted(p.name for p in daemon.inbox.iterdir())
    assert sha256_of(landed) == digest, "the inbox holds other bytes than the page sent"
    listed = {f["path"]: f for f in daemon.api("GET", "/api/v1/inbox").json()}
    assert listed["random 20MiB.bin"]["sha256"] == digest
    assert not list((daemon.inbox / ".doorstep" / "partial").iterdir()), "nothing partial is left behind"
    # 127.0.0.1 is a secure context: the page hashed the file and the daemon checked that digest.
    page.get_by_role("link", name="Send").click()
    result = page.locator("#upload-queue li", has_text="random 20MiB.bin")
    expect(result).to_contain_text("SHA-256 checked end to end")
    expect(result).to_contain_text(digest)
    assert elapsed > 2, f"the throttle did not hold ({elapsed:.1f} s): the screenshot may show no transfer"


def test_a_folder_keeps_its_layout_and_a_taken_name_gets_a_number(page: Page, daemon: Daemon,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "holiday"
    (folder / "day 1").mkdir(parents=True)
    digests = {"holiday/a.jpg": random_file(folder / "a.jpg", 300_000),
               "holiday/day 1/b.jpg": random_file(folder / "day 1" / "b.jpg", 1 * MiB + 7)}
    (daemon.inbox / "holiday").mkdir(exist_ok=True)
    (daemon.inbox / "holiday" / "a.jpg").write_bytes(b"was here first")
    login(page, daemon, path="/#/send")

    page.locator("#send-folder").set_input_files(folder)
    queue = page.locator("#upload-queue li")
    expect(queue).to_have_count(2)
    for item in queue.all():
        expect(item.locator(".badge")).to_have_text("in the inbox", timeout=30_000)

    assert (daemon.inbox / "holiday" / "a.jpg").read_bytes() == b"was here first", "never overwritten"
    assert sha256_of(daemon.inbox / "holiday" / "a (1).jpg") == digests["holiday/a.jpg"]
    assert sha256_of(daemon.inbox / "holiday" / "day 1" / "b.jpg") == digests["holiday/day 1/b.jpg"]
    expect(page.locator("#upload-queue li", has_text="holiday/a.jpg")).to_contain_text("Saved as holiday/a (1).jpg")

    page.get_by_role("link", name="Inbox").click()
    link = page.get_by_role("link", name="holiday/day 1/b.jpg")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "downloaded"
    download.value.save_as(saved)
    assert sha256_of(saved) == digests["holiday/day 1/b.jpg"]
