"""The CLI's API commands against a real daemon: where the token comes from, ``status``, ``shares``,
``transfers`` filters and ``inbox``; each checked against what the API itself reports."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.harness import DOORSTEP, Daemon, loopback_env, random_file, run_cli, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def cli_env(daemon: Daemon) -> dict[str, str]:
    return {"DOORSTEP_STATE_DIR": str(daemon.state_dir),
            "DOORSTEP_HTTP_LISTEN": f"127.0.0.1:{daemon.runtime['http_port']}"}


def cli(daemon: Daemon, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=60, **cli_env(daemon), **env)


def _share(daemon: Daemon, name: str, data: bytes) -> dict:
    response = daemon.api("PUT", f"/api/v1/shares/{name}", content=data)
    assert response.status_code == 201, response.text
    return response.json()


# -- the token ---------------------------------------------------------------------------------------


def test_token_from_stdin_env_or_state_dir_and_never_argv(daemon: Daemon, tmp_path: Path) -> None:
    elsewhere = {"DOORSTEP_STATE_DIR": str(tmp_path / "no-state"), "DOORSTEP_URL": daemon.base}
    piped = subprocess.run(DOORSTEP + ["--token-stdin", "status", "--json"], env=loopback_env(**elsewhere),
                           input=daemon.token + "\n", capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["health"]["status"] == "ok"
    after = subprocess.run(DOORSTEP + ["shares", "list", "--token-stdin", "--json"], env=loopback_env(**elsewhere),
                           input=daemon.token + "\n", capture_output=True, text=True, timeout=60)
    assert after.returncode == 0 and json.loads(after.stdout) == [], after.stderr

    empty = subprocess.run(DOORSTEP + ["--token-stdin", "status"], env=loopback_env(**elsewhere), input="",
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "stdin gave no token" in empty.stderr

    none = run_cli("status", **elsewhere)
    assert none.returncode == 2 and "no API token" in none.stderr and "DOORSTEP_TOKEN" in none.stderr
    assert none.stdout == ""
    from_env = run_cli("status", "--json", DOORSTEP_TOKEN=daemon.token, **elsewhere)
    assert from_env.returncode == 0, from_env.stderr
    wrong = run_cli("transfers", DOORSTEP_TOKEN="wrong", **elsewhere)
    assert wrong.returncode == 1 and wrong.stderr.startswith("doorstep: ") and "HTTP 401" in wrong.stderr

    for argv in (["--token", daemon.token, "status"], ["status", "--token", daemon.token],
                 [f"--token={daemon.token}", "status"], ["status", f"--token={daemon.token}"],
                 ["status", "--tok", daemon.token], ["status", "--token-stdin=" + daemon.token]):
        refused = run_cli(*argv, **elsewhere)
        assert refused.returncode == 2 and "error:" in refused.stderr, (argv, refused.stdout, refused.stderr)
        assert refused.stdout == "", argv
    assert "--token " not in run_cli("--help").stdout


# -- status, transfers -------------------------------------------------------------------------------


def test_status_counts_match_the_api(daemon: Daemon) -> None:
    _share(daemon, "a.txt", b"a" * 1000)
    _share(daemon, "b.txt", b"b" * 2000)
    done = cli(daemon, "status", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["health"] == daemon.api("GET", "/api/v1/health").json()
    assert body["transfers"] == daemon.api("GET", "/api/v1/transfers").json()
    assert body["counts"]["transfers"] == {"connecting": 2}
    assert body["counts"]["shares"] == 2 and body["counts"]["devices"] == {}
    human = cli(daemon, "status")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].startswith("doorstep ") and ": ok  (" in lines[0]
    assert "transfers: 2 connecting" in lines and "shares:    2" in lines and "devices:   none" in lines


def test_transfers_filters_and_empty_table(daemon: Daemon) -> None:
    assert cli(daemon, "transfers").stdout == "no transfers\n"
    for name in ("one", "two", "three"):
        _share(daemon, name, name.encode())
    everything = json.loads(cli(daemon, "transfers", "--json").stdout)
    assert everything == daemon.api("GET", "/api/v1/transfers").json() and len(everything) == 3
    assert len(json.loads(cli(daemon, "transfers", "--json", "--limit", "2").stdout)) == 2
    assert json.loads(cli(daemon, "transfers", "--json", "--state", "done").stdout) == []
    assert len(json.loads(cli(daemon, "transfers", "--json", "--direction", "send").stdout)) == 3
    assert json.loads(cli(daemon, "transfers", "--json", "--direction", "receive").stdout) == []
    bad = cli(daemon, "transfers", "--state", "sleeping")
    assert bad.returncode == 2 and "invalid state sleeping" in bad.stderr
    mixed = cli(daemon, "transfers", "--watch", "--json")
    assert mixed.returncode == 2 and "does not mix with --json" in mixed.stderr and mixed.stdout == ""


def test_transfers_cancel(daemon: Daemon) -> None:
    _share(daemon, "waiting.txt", b"w" * 10)
    [waiting] = daemon.api("GET", "/api/v1/transfers").json()
    cancelled = cli(daemon, "transfers", "cancel", waiting["id"], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == daemon.api("GET", f"/api/v1/transfers/{waiting['id']}").json()
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    again = cli(daemon, "transfers", "cancel", waiting["id"])
    assert again.returncode == 1 and "(HTTP 409)" in again.stderr and again.stdout == ""
    unknown = cli(daemon, "transfers", "cancel", "nope")
    assert unknown.returncode == 1 and "(HTTP 404)" in unknown.stderr


# -- shares ------------------------------------------------------------------------------------------


def test_shares_list_and_qr_match_the_api(daemon: Daemon, tmp_path: Path) -> None:
    assert cli(daemon, "shares").stdout == "no shares\n"
    share = _share(daemon, "photo.jpg", b"j" * 5000)
    listed = cli(daemon, "shares", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == daemon.api("GET", "/api/v1/shares").json()
    table = cli(daemon, "shares", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "FILES", "SIZE", "CODE", "UNTIL", "LINK"]
    assert table[1].split()[:5] == [share["share_id"], "photo.jpg", "1", "5.0", "kB"]
    assert share["code"] in table[1] and share["url"] in table[1]

    qr = cli(daemon, "shares", "qr", share["share_id"])
    assert qr.returncode == 0, qr.stderr
    assert f"link: {share['url']}" in qr.stdout and f"code: {share['code']}" in qr.stdout
    assert "█" in qr.stdout or "▀" in qr.stdout, "a QR code drawn with block characters"
    unknown = cli(daemon, "shares", "qr", "no-such-share")
    assert unknown.returncode == 1 and "no share 'no-such-share'" in unknown.stderr


def test_shares_revoke_and_qr_svg(daemon: Daemon, tmp_path: Path) -> None:
    share = _share(daemon, "doc.txt", b"d" * 100)
    svg = tmp_path / "qr.svg"
    qr = cli(daemon, "shares", "qr", share["share_id"], "--svg", str(svg))
    assert qr.returncode == 0, qr.stderr
    assert svg.read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    revoked = cli(daemon, "shares", "revoke", share["share_id"], "--json")
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout) == {"share_id": share["share_id"], "revoked": True}
    assert daemon.api("GET", "/api/v1/shares").json() == []
    again = cli(daemon, "shares", "revoke", share["share_id"])
    assert again.returncode == 1 and "HTTP 404" in again.stderr


# -- inbox -------------------------------------------------------------------------------------------


@pytest.fixture
def delivered(start_daemon: Callable[..., Daemon], tmp_path: Path) -> tuple[Daemon, dict[str, str]]:
    """A daemon whose inbox holds two files, fetched from another daemon's share by its code."""
    a, b = start_daemon("a"), start_daemon("b")
    folder = tmp_path / "src"
    folder.mkdir()
    digests = {"notes.txt": random_file(folder / "notes.txt", 1234),
               "big.bin": random_file(folder / "big.bin", 3 * MiB + 1)}
    with (folder / "notes.txt").open("rb") as notes, (folder / "big.bin").open("rb") as big:
        response = b.api("POST", "/api/v1/shares", data={"name": "two"},
                         files=[("file", ("notes.txt", notes)), ("file", ("big.bin", big))])
    assert response.status_code == 201, response.text
    fetch = a.api("POST", "/api/v1/receive", json={"code": response.json()["code"], "signal": b.signal_url})
    assert fetch.status_code == 202, fetch.text
    a.wait_transfer(fetch.json()["id"], lambda t: t["state"] == "done")
    return a, digests


def test_inbox_list_get_rm_round_trip(delivered: tuple[Daemon, dict[str, str]], tmp_path: Path) -> None:
    daemon, digests = delivered
    listed = cli(daemon, "inbox", "--json")
    assert listed.returncode == 0, listed.stderr
    api = daemon.api("GET", "/api/v1/inbox").json()
    assert json.loads(listed.stdout) == api
    entries = api["files"] if isinstance(api, dict) else api
    assert sorted(e["path"] for e in entries) == ["big.bin", "notes.txt"]
    table = cli(daemon, "inbox", "list")
    assert table.stdout.splitlines()[0].split() == ["PATH", "SIZE", "MODIFIED", "SHA256"]
    assert any(line.startswith("big.bin ") for line in table.stdout.splitlines())

    out = tmp_path / "downloads"
    out.mkdir()
    got = cli(daemon, "inbox", "get", "big.bin", "--out", str(out / "copy.bin"), "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == {"path": "big.bin", "out": str(out / "copy.bin"), "size": 3 * MiB + 1,
                                      "sha256": digests["big.bin"], "verified": True}
    assert sha256_of(out / "copy.bin") == digests["big.bin"]
    assert sorted(p.name for p in out.iterdir()) == ["copy.bin"], "no temporary file left behind"
    exists = cli(daemon, "inbox", "get", "big.bin", "--out", str(out / "copy.bin"))
    assert exists.returncode == 1 and "--force" in exists.stderr
    into_dir = cli(daemon, "inbox", "get", "notes.txt", "--out", str(out))
    assert into_dir.returncode == 0, into_dir.stderr
    assert sha256_of(out / "notes.txt") == digests["notes.txt"]
    assert into_dir.stdout.splitlines()[-1] == (f"saved {out / 'notes.txt'}  1234 bytes  sha256 "
                                                f"{digests['notes.txt']} verified")
    to_stdout = subprocess.run(DOORSTEP + ["inbox", "get", "notes.txt", "--out", "-"],
                               env=loopback_env(**cli_env(daemon)), capture_output=True, timeout=60)
    assert to_stdout.returncode == 0 and to_stdout.stdout == (daemon.inbox / "notes.txt").read_bytes()

    removed = cli(daemon, "inbox", "rm", "notes.txt")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == "deleted notes.txt\n"
    after = daemon.api("GET", "/api/v1/inbox").json()
    assert [e["path"] for e in (after["files"] if isinstance(after, dict) else after)] == ["big.bin"]
    assert not (daemon.inbox / "notes.txt").exists()
    gone = cli(daemon, "inbox", "get", "notes.txt", "--out", str(out / "again.txt"))
    assert gone.returncode == 1 and "HTTP 404" in gone.stderr
    assert not (out / "again.txt").exists()
    status = json.loads(cli(daemon, "status", "--json").stdout)
    assert status["counts"]["inbox"] == {"files": 1, "bytes": 3 * MiB + 1}
