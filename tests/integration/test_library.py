"""Two real daemons: A publishes a folder to B; B browses it, pulls a subtree (verified, into its
inbox), pulls again without moving a byte, and sees A's folder change live; a device the library
is not published to is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.harness import Daemon, random_file, run_cli, sha256_of
from tests.integration.test_pairing import _pair

pytestmark = pytest.mark.integration

KiB = 1024


def _wait(predicate, what: str, timeout: float = 30.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def _catalogued(a: Daemon, name: str, count: int) -> bool:
    library = a.api("GET", f"/api/v1/libraries/{name}").json()
    return library["files"] == count and library["pending"] == 0


def _inbox(daemon: Daemon, under: str) -> dict[str, str]:
    root = daemon.inbox / under
    return {str(p.relative_to(root)): sha256_of(p) for p in root.rglob("*") if p.is_file()}


def test_publish_browse_pull_dedup_live_update_and_refusal(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a")
    b = start_daemon("b")
    c = start_daemon("c")
    a_id, b_id = _pair(a, b)
    a_id_for_c, c_id = None, None
    code = a.api("POST", "/api/v1/pair", json={}).json()["code"]
    joined = c.api("POST", "/api/v1/pair", json={"code": code, "signal": a.signal_url})
    assert joined.status_code == 200, joined.text
    a_id_for_c = joined.json()["id"]
    assert a_id_for_c == a_id

    folder = tmp_path / "photos"
    (folder / "2024" / "june").mkdir(parents=True)
    (folder / "2023").mkdir()
    digests = {
        "2024/june/beach.jpg": random_file(folder / "2024" / "june" / "beach.jpg", 300 * KiB + 7),
        "2024/june/sunset.jpg": random_file(folder / "2024" / "june" / "sunset.jpg", 2 * 1024 * KiB),
        "2024/notes.txt": random_file(folder / "2024" / "notes.txt", 10),
        "2023/old.jpg": random_file(folder / "2023" / "old.jpg", 50 * KiB),
        "empty.txt": random_file(folder / "empty.txt", 0),
    }
    (folder / ".hidden").write_text("never listed")
    (folder / "2024" / "download.part").write_text("never listed")
    (folder / "escape").symlink_to("/etc")

    bad = a.api("POST", "/api/v1/libraries", json={"name": "../x", "path": str(folder), "devices": [b_id]})
    assert bad.status_code == 400, bad.text
    none = a.api("POST", "/api/v1/libraries", json={"name": "photos", "path": str(folder), "devices": []})
    assert none.status_code == 400, none.text
    published = a.api("POST", "/api/v1/libraries", json={"name": "photos", "path": str(folder), "devices": [b_id]})
    assert published.status_code == 201, published.text + a.log_tail()
    _wait(lambda: _catalogued(a, "photos", len(digests)), "the catalogue")

    # B lists A's libraries, the root and a subfolder: sizes and hashes match the files.
    listed = b.api("GET", f"/api/v1/devices/{a_id}/libraries")
    assert listed.status_code == 200, listed.text + b.log_tail()
    assert listed.json() == [{"name": "photos", "files": len(digests),
                              "size": sum((folder / p).stat().st_size for p in digests)}]
    root = b.api("GET", f"/api/v1/devices/{a_id}/libraries/photos")
    assert root.status_code == 200, root.text
    assert {e["path"]: e["sha256"] for e in root.json()["entries"]} == digests
    assert all(e["size"] == (folder / e["path"]).stat().st_size for e in root.json()["entries"])
    sub = b.api("GET", f"/api/v1/devices/{a_id}/libraries/photos", params={"prefix": "2024/june"}).json()
    assert sorted(e["path"] for e in sub["entries"]) == ["2024/june/beach.jpg", "2024/june/sunset.jpg"]

    # Pull a subtree: files land in B's inbox under photos/, verified.
    pulled = b.api("POST", f"/api/v1/devices/{a_id}/libraries/photos/pull", json={"prefix": "2024"})
    assert pulled.status_code == 202, pulled.text + b.log_tail()
    first = pulled.json()
    assert (first["files"], first["already_here"], first["requested"]) == (3, 0, 3)
    done = b.wait_transfer(first["transfer_id"], lambda t: t["state"] == "done", timeout=60)
    assert done["bytes_moved"] >= 2 * 1024 * KiB
    assert _inbox(b, "photos") == {p: d for p, d in digests.items() if p.startswith("2024/")}

    # Pull again: nothing moves.
    transfers_before = b.api("GET", "/api/v1/transfers").json()
    again = b.api("POST", f"/api/v1/devices/{a_id}/libraries/photos/pull", json={"prefix": "2024"})
    assert again.status_code == 202, again.text
    assert again.json()["transfer_id"] is None and again.json()["already_here"] == 3
    assert "3 file(s) already here" in again.json()["message"]
    assert b.api("GET", "/api/v1/transfers").json() == transfers_before, "no transfer was made"
    cli = run_cli("library", "pull", a_id, "photos", "2024/june", "--json", timeout=90,
                  DOORSTEP_STATE_DIR=str(b.state_dir), DOORSTEP_HTTP_LISTEN=f"127.0.0.1:{b.runtime['http_port']}")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["already_here"] == 2 and json.loads(cli.stdout)["transfer_id"] is None
    cli = run_cli("library", "browse", a_id, "photos", "2024", timeout=90,
                  DOORSTEP_STATE_DIR=str(b.state_dir), DOORSTEP_HTTP_LISTEN=f"127.0.0.1:{b.runtime['http_port']}")
    assert cli.returncode == 0 and "2024/june/sunset.jpg" in cli.stdout, cli.stderr

    # The whole library: only what is missing moves.
    whole = b.api("POST", f"/api/v1/devices/{a_id}/libraries/photos/pull", json={}).json()
    assert (whole["already_here"], whole["requested"]) == (3, 2)
    moved = b.wait_transfer(whole["transfer_id"], lambda t: t["state"] == "done", timeout=60)
    assert moved["bytes_moved"] == 50 * KiB
    assert _inbox(b, "photos") == digests

    # A change in the published folder shows in B's listing within a few seconds.
    digests["2024/june/new.jpg"] = random_file(folder / "2024" / "june" / "new.jpg", 4 * KiB)
    (folder / "2023" / "old.jpg").unlink()
    (folder / "empty.txt").rename(folder / "renamed.txt")
    digests["renamed.txt"] = digests.pop("empty.txt")
    del digests["2023/old.jpg"]

    def b_sees() -> bool:
        entries = b.api("GET", f"/api/v1/devices/{a_id}/libraries/photos").json()["entries"]
        return {e["path"]: e["sha256"] for e in entries} == digests

    _wait(b_sees, "the change to show in B's listing", timeout=20, step=0.5)

    # C is paired with A but the library is not published to it.
    assert c.api("GET", f"/api/v1/devices/{a_id}/libraries").json() == []
    refused = c.api("GET", f"/api/v1/devices/{a_id}/libraries/photos")
    assert refused.status_code == 404 and refused.json()["error"] == "unknown_library", refused.text
    refused = c.api("POST", f"/api/v1/devices/{a_id}/libraries/photos/pull", json={})
    assert refused.status_code == 404, refused.text
    assert not (c.inbox / "photos").exists()

    # Once A forgets C, C cannot even connect.
    assert a.api("DELETE", f"/api/v1/devices/{c_id or _device_id(a, c)}").status_code == 204
    gone = c.api("GET", f"/api/v1/devices/{a_id}/libraries")
    assert gone.status_code in (403, 502), gone.text

    # Unpublishing: B no longer sees it.
    assert a.api("DELETE", "/api/v1/libraries/photos").status_code == 204
    assert b.api("GET", f"/api/v1/devices/{a_id}/libraries").json() == []


def _device_id(a: Daemon, other: Daemon) -> str:
    own = other.api("GET", "/api/v1/identity").json()["device_id"]
    assert any(d["id"] == own for d in a.api("GET", "/api/v1/devices").json())
    return own


def test_a_pull_cut_short_resumes_from_its_offsets(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a")
    b = start_daemon("b")
    a_id, b_id = _pair(a, b)
    folder = tmp_path / "big"
    folder.mkdir()
    size = 160 * 1024 * KiB
    digest = random_file(folder / "large.bin", size)
    small = random_file(folder / "small.bin", 1000)
    assert a.api("POST", "/api/v1/libraries", json={"name": "big", "path": str(folder), "devices": [b_id]}).status_code == 201
    _wait(lambda: _catalogued(a, "big", 2), "the catalogue", timeout=60)

    first = b.api("POST", f"/api/v1/devices/{a_id}/libraries/big/pull", json={}).json()
    transfer_id = first["transfer_id"]
    b.wait_transfer(transfer_id, lambda t: t["bytes_done"] > 0, timeout=60)
    cancelled = b.api("POST", f"/api/v1/transfers/{transfer_id}/cancel")
    assert cancelled.status_code == 200, "the pull finished before it could be cut: " + cancelled.text
    stopped = b.wait_transfer(transfer_id, lambda t: t["state"] == "cancelled", timeout=30, allow_failure=True)
    durable = stopped["bytes_done"]
    assert 0 < durable < size + 1000

    again = b.api("POST", f"/api/v1/devices/{a_id}/libraries/big/pull", json={})
    assert again.status_code == 202, again.text
    assert again.json()["transfer_id"] == transfer_id, "the same transfer resumes"
    done = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=120)
    assert done["bytes_moved"] < size + 1000 + stopped["bytes_moved"], "not everything moved twice"
    assert _inbox(b, "big") == {"large.bin": digest, "small.bin": small}
