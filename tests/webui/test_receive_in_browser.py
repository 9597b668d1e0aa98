"""J3, receiving: a page opened from a share link receives the share over WebRTC from the
appliance's own peer (origin authentication, the transfer protocol in the page), checks every
file's SHA-256 in the page, and hands over exactly the bytes that were shared: streamed through
the File System Access API where the browser has it, otherwise kept in memory and downloaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.integration.harness import Daemon, random_file, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
RECEIVE_TIMEOUT = 120_000

NO_DISK = "delete window.showSaveFilePicker; delete window.showDirectoryPicker;"
"""Without the File System Access API (Firefox, Safari, plain-http pages) the page keeps files in memory."""

# The native picker cannot be driven headless: answer it with a file in the origin-private file
# system, which has the same FileSystemFileHandle and createWritable() as a file the person picked.
OPFS_PICKER = """
window.showSaveFilePicker = async ({suggestedName}) =>
    (await navigator.storage.getDirectory()).getFileHandle(suggestedName, {create: true});
window.showDirectoryPicker = async () => navigator.storage.getDirectory();
"""

OPFS_SHA256 = """async (name) => {
    const file = await (await (await navigator.storage.getDirectory()).getFileHandle(name)).getFile();
    const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
    return {size: file.size, sha256: Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, '0')).join('')};
}"""


def _share(daemon: Daemon, path: Path, name: str) -> dict:
    with path.open("rb") as body:
        response = daemon.api("PUT", f"/api/v1/shares/{name}", content=body)
    assert response.status_code == 201, response.text
    return response.json()


def _receive(page: Page, daemon: Daemon, code: str) -> None:
    page.goto(f"{daemon.base}/r/{code}")
    page.locator("#receive-start").click()


def _wait_verified(page: Page) -> None:
    status = page.locator("#receive-status")
    expect(status).to_have_attribute("data-state", "verified", timeout=RECEIVE_TIMEOUT)
    expect(status).to_contain_text("every SHA-256 matches")


def _send_transfer(daemon: Daemon, share: dict) -> dict:
    transfers = daemon.api("GET", "/api/v1/transfers").json()
    return next(t for t in transfers if t.get("share_id") == share["share_id"])


def test_a_page_receives_a_share_by_code_into_memory_and_downloads_the_same_bytes(
        page: Page, daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "holiday video.bin"
    digest = random_file(source, 20 * MiB)
    share = _share(daemon, source, "holiday video.bin")
    page.add_init_script(NO_DISK)
    _receive(page, daemon, share["code"])

    offered = page.locator("#receive-files li")
    expect(offered).to_have_count(1)
    expect(offered).to_contain_text("holiday video.bin")
    expect(offered).to_contain_text("20 MiB")
    page.locator("#receive-memory").click()
    _wait_verified(page)

    with page.expect_download() as download_info:
        page.locator("#receive-downloads a", has_text="holiday video.bin").click()
    saved = tmp_path / "downloaded.bin"
    download_info.value.save_as(saved)
    assert download_info.value.suggested_filename == "holiday video.bin"
    assert saved.stat().st_size == 20 * MiB
    assert sha256_of(saved) == digest, "the page handed over other bytes than were shared"
    daemon.wait_transfer(_send_transfer(daemon, share)["id"], lambda t: t["state"] == "done", timeout=30)


def test_a_page_streams_a_multi_file_share_to_disk_through_the_file_system_access_api(
        page: Page, daemon: Daemon, tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    digests = {"a.bin": random_file(a, 3 * MiB + 17), "b.bin": random_file(b, 0)}
    files = [("files", ("a.bin", a.read_bytes())), ("files", ("b.bin", b.read_bytes()))]
    response = daemon.api("POST", "/api/v1/shares", files=files, data={"name": "two files"})
    assert response.status_code == 201, response.text
    share = response.json()
    page.add_init_script(OPFS_PICKER)
    _receive(page, daemon, share["code"])
    page.locator("#receive-save").click()
    _wait_verified(page)
    for name, digest in digests.items():
        written = page.evaluate(OPFS_SHA256, name)
        assert written == {"size": (a if name == "a.bin" else b).stat().st_size, "sha256": digest}, name


def test_a_used_or_wrong_code_is_refused_with_a_clear_message(page: Page, daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "once.txt"
    source.write_bytes(b"only once")
    share = _share(daemon, source, "once.txt")
    page.add_init_script(NO_DISK)
    _receive(page, daemon, share["code"])
    page.locator("#receive-memory").click()
    _wait_verified(page)

    page.goto("about:blank")
    _receive(page, daemon, share["code"])  # the code was spent by the first receive
    status = page.locator("#receive-status")
    expect(status).to_have_attribute("data-state", "failed", timeout=30_000)
    expect(status).to_have_text("This code does not work: it is wrong, used, or expired.")
    assert hashlib.sha256(b"only once").hexdigest() == _send_transfer(daemon, share)["files"][0]["sha256"]


def test_a_hostile_file_name_in_an_offer_is_shown_as_text_and_runs_nothing(
        page: Page, daemon: Daemon, tmp_path: Path) -> None:
    hostile = "<img src=x onerror=alert(1)>.txt"
    response = daemon.api("POST", "/api/v1/shares", files=[("files", (hostile, b"harmless"))])
    assert response.status_code == 201, response.text
    share = response.json()
    offered_name = _send_transfer(daemon, share)["files"][0]["path"]  # as the daemon's storage made it safe
    assert offered_name.startswith("_img src=x onerror=alert(1)_")
    page.add_init_script(NO_DISK)
    _receive(page, daemon, share["code"])
    offered = page.locator("#receive-files li .name")
    expect(offered).to_have_text(offered_name)
    assert page.locator("#receive-area img").count() == 0
    page.locator("#receive-memory").click()
    _wait_verified(page)
    expect(page.locator("#receive-downloads a")).to_have_text(f"Download {offered_name}")
    # the watch fixture fails the test if the page opened a dialog or raised
