"""The inbox API on real daemons: list, download (whole and by ``Range``, compared with the bytes
received), delete; symlinks and the private folder never served; and the inbox rules (largest
transfer, free-space reserve, ``skip`` collisions)."""

from __future__ import annotations

import subprocess
import urllib.parse
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_binary
from tests.integration.harness import Daemon, api_error, random_file, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _share_tree(daemon: Daemon, files: dict[str, Path]) -> dict:
    response = daemon.api("POST", "/api/v1/shares",
                          files=[("file", (name, path.read_bytes(), "application/octet-stream"))
                                 for name, path in files.items()])
    assert response.status_code == 201, response.text
    return response.json()


def _receive(receiver: Daemon, sharer: Daemon, code: str, *, state: str = "done") -> dict:
    started = receiver.api("POST", "/api/v1/receive", json={"code": code, "signal": sharer.signal_url})
    assert started.status_code == 202, started.text
    return receiver.wait_transfer(started.json()["id"], lambda t: t["state"] == state, timeout=120,
                                  allow_failure=state == "failed")


def _url(path: str) -> str:
    return "/api/v1/inbox/" + urllib.parse.quote(path)


def test_list_download_ranges_and_delete(start_daemon, tmp_path: Path) -> None:
    a, b = start_daemon("a"), start_daemon("b")
    big, note = tmp_path / "big.bin", tmp_path / "note.txt"
    digests = {"photos/été 2024.bin": random_file(big, 3 * MiB + 5), "note.txt": random_file(note, 1000)}
    share = _share_tree(a, {"photos/été 2024.bin": big, "note.txt": note})
    record = _receive(b, a, share["code"])

    listed = b.api("GET", "/api/v1/inbox")
    assert listed.status_code == 200
    assert [(f["path"], f["size"], f["sha256"], f["transfer"]) for f in listed.json()] == [
        ("note.txt", 1000, digests["note.txt"], record["id"]),
        ("photos/été 2024.bin", 3 * MiB + 5, digests["photos/été 2024.bin"], record["id"])]
    assert all(isinstance(f["mtime"], float) for f in listed.json())
    assert [f["path"] for f in b.api("GET", "/api/v1/inbox", params={"prefix": "photos/"}).json()] == \
        ["photos/été 2024.bin"]
    assert b.api("GET", "/api/v1/inbox", params={"prefix": "zzz"}).json() == []
    (b.inbox / "by hand.txt").write_bytes(b"not from a transfer")
    by_hand = next(f for f in b.api("GET", "/api/v1/inbox").json() if f["path"] == "by hand.txt")
    assert (by_hand["transfer"], by_hand["sha256"]) == (None, None)

    received = (b.inbox / "photos" / "été 2024.bin").read_bytes()
    whole = b.api("GET", _url("photos/été 2024.bin"))
    assert whole.status_code == 200 and whole.content == received
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-length"] == str(len(received))
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.headers["content-disposition"] == \
        "attachment; filename=\"ete 2024.bin\"; filename*=UTF-8''%C3%A9t%C3%A9%202024.bin"
    for header, start, end in (("bytes=100-199", 100, 199), ("bytes=-1000", len(received) - 1000, len(received) - 1),
                               (f"bytes={len(received) - 7}-", len(received) - 7, len(received) - 1),
                               ("bytes=0-0", 0, 0), (f"bytes=5-{10 * len(received)}", 5, len(received) - 1)):
        part = b.api("GET", _url("photos/été 2024.bin"), headers={"Range": header})
        assert part.status_code == 206, (header, part.text[:200])
        assert part.content == received[start:end + 1], header
        assert part.headers["content-range"] == f"bytes {start}-{end}/{len(received)}"
        assert part.headers["content-length"] == str(end - start + 1)
    unsatisfiable = b.api("GET", _url("note.txt"), headers={"Range": "bytes=1000-"})
    api_error(unsatisfiable, 416, "range_not_satisfiable")
    assert unsatisfiable.headers["content-range"] == "bytes */1000"
    several = b.api("GET", _url("note.txt"), headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and len(several.content) == 1000, "several ranges: the whole file"

    # curl resumes a download with -C -: the bytes put together are the file.
    curl = require_binary("curl")
    out = tmp_path / "download.bin"
    out.write_bytes(received[: MiB])
    header_file = tmp_path / "auth.header"
    header_file.write_text(f"Authorization: Bearer {b.token}\n")
    done = subprocess.run([curl, "-sS", "--fail", "-C", "-", "-H", f"@{header_file}", "-o", str(out),
                           b.base + _url("photos/été 2024.bin")], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sha256_of(out) == digests["photos/été 2024.bin"]

    assert b.api("DELETE", _url("photos/été 2024.bin")).status_code == 204
    assert not (b.inbox / "photos" / "été 2024.bin").exists() and (b.inbox / "photos").is_dir()
    api_error(b.api("DELETE", _url("photos/été 2024.bin")), 404, "not_found")
    api_error(b.api("GET", _url("photos/été 2024.bin")), 404, "not_found")
    assert [f["path"] for f in b.api("GET", "/api/v1/inbox").json()] == ["by hand.txt", "note.txt"]


def test_symlinks_and_the_private_folder_are_never_served(daemon: Daemon, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the inbox")
    inbox = daemon.inbox
    (inbox / "link.txt").symlink_to(secret)
    (inbox / "linked-dir").symlink_to(tmp_path)
    (inbox / "real").mkdir()
    (inbox / "real" / "ok.txt").write_text("fine")
    (inbox / ".doorstep" / "partial" / "abc").mkdir(parents=True, exist_ok=True)
    (inbox / ".doorstep" / "partial" / "abc" / "0.part").write_text("partial")

    assert [f["path"] for f in daemon.api("GET", "/api/v1/inbox").json()] == ["real/ok.txt"]
    for path in ("link.txt", "linked-dir/secret.txt", ".doorstep/partial/abc/0.part", "real", "missing"):
        api_error(daemon.api("GET", _url(path)), 404, "not_found")
        api_error(daemon.api("DELETE", _url(path)), 404, "not_found")
    assert secret.read_text() == "outside the inbox" and (inbox / "link.txt").is_symlink()
    assert (inbox / ".doorstep" / "partial" / "abc" / "0.part").exists()
    for raw in ("/api/v1/inbox/real/..%2f..%2fsecret.txt", "/api/v1/inbox/real/%2e%2e/link.txt",
                "/api/v1/inbox/real/ok.txt%00", "/api/v1/inbox/%2e%2e/%2e%2e/etc/passwd"):
        response = httpx.request("GET", daemon.base + raw, headers={"Authorization": f"Bearer {daemon.token}"})
        assert response.status_code in (400, 404), (raw, response.status_code, response.text)
        assert response.json()["error"] in ("bad_path", "not_found"), response.text
    assert daemon.api("GET", _url("real/ok.txt")).text == "fine"


def test_inbox_rules_max_transfer_reserve_and_skip(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a")
    b = start_daemon("b", DOORSTEP_INBOX_MAX_TRANSFER="64KiB", DOORSTEP_INBOX_COLLISION="skip")
    c = start_daemon("c", DOORSTEP_INBOX_RESERVE="1000T")
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    random_file(small, 1000)
    random_file(large, 64 * 1024 + 1)

    too_big = _receive(b, a, _share_tree(a, {"large.bin": large})["code"], state="failed")
    assert "at most 65536 bytes" in too_big["error"], too_big
    no_room = _receive(c, a, _share_tree(a, {"small.bin": small})["code"], state="failed")
    assert "not enough free space" in no_room["error"] and "kept in reserve" in no_room["error"], no_room
    assert b.api("GET", "/api/v1/inbox").json() == [] and c.api("GET", "/api/v1/inbox").json() == []

    # skip: the same bytes under the same name are stored once; different bytes get a new name.
    first = _receive(b, a, _share_tree(a, {"same.bin": small})["code"])
    again = _receive(b, a, _share_tree(a, {"same.bin": small})["code"])
    other = tmp_path / "other.bin"
    random_file(other, 1000)
    different = _receive(b, a, _share_tree(a, {"same.bin": other})["code"])
    assert [t["files"][0]["final_path"] for t in (first, again, different)] == ["same.bin", "same.bin",
                                                                               "same (1).bin"]
    assert sorted(f["path"] for f in b.api("GET", "/api/v1/inbox").json()) == ["same (1).bin", "same.bin"]
    assert sha256_of(b.inbox / "same.bin") == sha256_of(small)
