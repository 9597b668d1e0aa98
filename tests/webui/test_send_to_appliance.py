"""J3 in a real browser: log in with the token, send files from the page, and they land in the
inbox verified, while the dashboard shows the transfer live (progress, speed, ETA)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import IN_CI, require_binary
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


@contextmanager
def connections_refused(port: int) -> Iterator[None]:
    """Reset every TCP packet to 127.0.0.1:``port`` (the running upload and any new one), as a
    phone changing networks would cut them; the rule is removed on exit. Needs root and iptables."""
    iptables = require_binary("iptables")
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root; cutting connections needs it")
        pytest.skip("cutting a connection with iptables needs root")
    rule = ["INPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"]
    subprocess.run([iptables, "-w", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run([iptables, "-w", "-D", *rule], check=True)


def test_an_upload_cut_by_a_network_change_starts_again_when_the_network_is_back(
        page: Page, daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "on the train.bin"
    digest = random_file(source, 8 * MiB)
    login(page, daemon)
    page.get_by_role("link", name="Send").click()
    throttle_uploads(page, 1 * MiB)
    page.locator("#send-files").set_input_files(source)
    card = page.locator("#upload-queue li", has_text="on the train.bin")
    page.wait_for_function("p => p.value > 0", arg=card.locator("progress").element_handle())

    with connections_refused(daemon.runtime["http_port"]):
        page.context.set_offline(True)  # the page is told, as a browser is when its network goes
        expect(card.locator(".badge")).to_have_text("waiting for the network")
        expect(card.locator(".detail")).to_contain_text("The connection dropped; trying again")
    throttle_uploads(page, None)
    page.context.set_offline(False)  # "online": the upload starts over at once

    expect(card.locator(".badge")).to_have_text("in the inbox", timeout=60_000)
    expect(page.locator("#connection")).to_have_text("live", timeout=30_000)
    landed = daemon.inbox / "on the train.bin"
    assert sha256_of(landed) == digest
    assert not (daemon.inbox / "on the train (1).bin").exists(), "the cut attempt left nothing that took the name"
    # The daemon never heard the cut (the reset went to the browser): the quiet upload is given up
    # after http.upload_stall (3 s here) and its partial file removed.
    partial = daemon.inbox / ".doorstep" / "partial"
    deadline = time.monotonic() + 15
    while any(partial.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(partial.iterdir()), "the abandoned upload's partial file is removed"
    failed = [t for t in daemon.api("GET", "/api/v1/transfers").json()
              if t["state"] == "failed" and "no bytes arrived for 3 s" in (t.get("error") or "")]
    assert len(failed) == 1, "the cut attempt is recorded as failed, saying why"
