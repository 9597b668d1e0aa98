"""The CLI's API seam without a daemon: ``ApiClient`` over ``httpx.MockTransport``, the token and URL
rules, device resolution, and the streamed multipart upload."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import httpx
import pytest

from daemon.runtime.cli_client import ApiClient, ApiError, CliError, TokenError, UsageError, daemon_url, resolve_token
from daemon.runtime.cli_send import LocalFile, SourceChanged, collect_files, resolve_device, upload_share
from daemon.runtime.config import load_config


def client_for(handler) -> ApiClient:
    return ApiClient("http://daemon.test", "secret", transport=httpx.MockTransport(handler))


def test_requests_carry_the_token_and_land_under_api_v1() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.url.query, request.headers["authorization"]))
        return httpx.Response(200, json=[])

    with client_for(handler) as client:
        assert client.get("/transfers", {"state": "done", "direction": None, "limit": 3}) == []
    assert seen == [("GET", "/api/v1/transfers", b"state=done&limit=3", "Bearer secret")]


@pytest.mark.parametrize(("response", "message", "status", "code"), [
    (httpx.Response(404, json={"error": "unknown_share", "message": "no such share"}),
     "no such share (HTTP 404)", 404, "unknown_share"),
    (httpx.Response(401, json={"status_code": 401, "detail": "a valid 'Authorization' header is required"}),
     "a valid 'Authorization' header is required (HTTP 401)", 401, None),
    (httpx.Response(404, json={"status_code": 404, "detail": "Not Found"}),
     "the daemon at http://daemon.test has no DELETE /api/v1/shares/x: it may be older than this doorstep "
     "(HTTP 404)", 404, None),
    (httpx.Response(502, text="<html>bad gateway</html>"), "<html>bad gateway</html> (HTTP 502)", 502, None),
    (httpx.Response(500), "Internal Server Error (HTTP 500)", 500, None),
])
def test_error_statuses_become_api_errors_that_say_why(response, message, status, code) -> None:
    with client_for(lambda _request: response) as client, pytest.raises(ApiError) as caught:
        client.delete("/shares/x")
    assert (str(caught.value), caught.value.status, caught.value.code, caught.value.exit_code) == (
        message, status, code, 1)


def test_transport_failures_become_api_errors_without_status() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with client_for(refuse) as client, pytest.raises(ApiError, match="did not answer: connection refused"):
        client.get("/health")
    with client_for(slow) as client, pytest.raises(ApiError, match=r"did not answer GET /health in time") as caught:
        client.get("/health")
    assert caught.value.status is None


def test_a_streamed_error_is_read_and_mapped() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "not_found", "message": "no file 'x' in the inbox"})

    with client_for(handler) as client, pytest.raises(ApiError, match=r"no file 'x' in the inbox \(HTTP 404\)"):
        with client.stream("GET", "/inbox/x"):
            raise AssertionError("not reached")


def test_a_non_json_answer_is_an_api_error() -> None:
    with client_for(lambda _r: httpx.Response(200, text="hello")) as client, pytest.raises(ApiError, match="not JSON"):
        client.get("/transfers")


# -- token and URL -------------------------------------------------------------------------------


class FakeStdin(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_token_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOORSTEP_TOKEN", raising=False)
    config = load_config(None, overrides={"state_dir": str(tmp_path)})
    with pytest.raises(TokenError, match="no API token") as caught:
        resolve_token(config, from_stdin=False)
    assert caught.value.exit_code == 2
    (tmp_path / "api-token").write_text("from-file\n")
    assert resolve_token(config, from_stdin=False) == "from-file"
    monkeypatch.setenv("DOORSTEP_TOKEN", " from-env ")
    assert resolve_token(config, from_stdin=False) == "from-env"
    assert resolve_token(config, from_stdin=True, stdin=FakeStdin("from-stdin\nsecond line\n")) == "from-stdin"
    with pytest.raises(TokenError, match="stdin gave no token"):
        resolve_token(config, from_stdin=True, stdin=FakeStdin("\n"))


def test_daemon_url_from_flag_env_config_or_runtime_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOORSTEP_URL", raising=False)
    config = load_config(None, overrides={"state_dir": str(tmp_path), "http.listen": "0.0.0.0:8080"})
    assert daemon_url(config) == "http://127.0.0.1:8080"
    assert daemon_url(load_config(None, overrides={"http.listen": "[::]:9"})) == "http://[::1]:9"
    monkeypatch.setenv("DOORSTEP_URL", "http://pi:8080/api/v1/")
    assert daemon_url(config) == "http://pi:8080"
    assert daemon_url(config, "https://box") == "https://box"
    with pytest.raises(UsageError, match="must start with http"):
        daemon_url(config, "pi:8080")
    monkeypatch.delenv("DOORSTEP_URL")
    picked = load_config(None, overrides={"state_dir": str(tmp_path), "http.listen": "127.0.0.1:0"})
    with pytest.raises(CliError, match="is it running"):
        daemon_url(picked)
    (tmp_path / "runtime.json").write_text(json.dumps({"http_port": 41234}))
    assert daemon_url(picked) == "http://127.0.0.1:41234"


# -- devices -------------------------------------------------------------------------------------


DEVICES = [{"id": "abc123", "name": "Living room Pi"}, {"id": "abd999", "name": "Laptop"},
           {"id": "xyz000", "name": "laptop-old"}]


@pytest.mark.parametrize(("wanted", "found"), [
    ("abc123", "abc123"), ("Living", "abc123"), ("living room pi", "abc123"), ("laptop", "abd999"),
    ("laptop-", "xyz000"), ("xyz", "xyz000"), ("abc", "abc123"),
])
def test_a_device_by_id_name_or_unique_prefix(wanted: str, found: str) -> None:
    assert resolve_device(DEVICES, wanted)["id"] == found


def test_ambiguous_or_unknown_devices_are_refused() -> None:
    with pytest.raises(CliError, match=r"'ab' matches several devices: Living room Pi \(abc123\), "
                                                  r"Laptop \(abd999\)"):
        resolve_device(DEVICES, "ab")
    with pytest.raises(CliError, match="no paired device matches 'phone'"):
        resolve_device(DEVICES, "phone")
    with pytest.raises(UsageError):
        resolve_device(DEVICES, "  ")


# -- upload --------------------------------------------------------------------------------------


def test_collect_files_names_folder_contents_under_the_folder(tmp_path: Path) -> None:
    (tmp_path / "trip" / "img").mkdir(parents=True)
    (tmp_path / "trip" / "b.txt").write_bytes(b"bb")
    (tmp_path / "trip" / "img" / "a.jpg").write_bytes(b"a")
    (tmp_path / "trip" / "link").symlink_to(tmp_path / "trip" / "b.txt")
    (tmp_path / "one").write_bytes(b"1")
    found = collect_files([tmp_path / "trip", tmp_path / "one"])
    assert [(f.name, f.size) for f in found] == [("trip/b.txt", 2), ("trip/img/a.jpg", 1), ("one", 1)]
    with pytest.raises(CliError, match="not a file or folder"):
        collect_files([tmp_path / "missing"])


def test_upload_streams_each_file_with_one_descriptor_at_a_time(tmp_path: Path) -> None:
    sizes = {"f0": 0, "f1": 100_000, "f2": 3 * 65536 + 7}
    files = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
        files.append(LocalFile(f"dir/{name}", tmp_path / name, size))
    open_fds: list[int] = []
    progress: list[int] = []
    bodies: dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        assert int(request.headers["content-length"]) > sum(sizes.values())
        body = b"".join(_chunks(request, open_fds))
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        for part in body.split(b"--" + boundary)[1:-1]:
            head, _, data = part.partition(b"\r\n\r\n")
            if b'filename="' in head:
                bodies[head.split(b'filename="')[1].split(b'"')[0].decode()] = data[:-2]
            else:
                assert data[:-2] == b"a share", head
        return httpx.Response(201, json={"share_id": "s1"})

    with client_for(handler) as client:
        assert upload_share(client, files, name="a share", on_progress=progress.append) == {"share_id": "s1"}
    assert bodies == {f"dir/{name}": (tmp_path / name).read_bytes() for name in sizes}
    assert progress[-1] == sum(sizes.values()) and progress == sorted(progress)
    assert max(open_fds) - min(open_fds) <= 1, "at most one source file open at any time"


def _chunks(request: httpx.Request, open_fds: list[int]):
    for chunk in request.stream:
        open_fds.append(len(os.listdir("/proc/self/fd")))
        yield chunk


def test_a_file_that_changes_during_upload_aborts_it(tmp_path: Path) -> None:
    source = tmp_path / "growing"
    source.write_bytes(b"x" * 1000)
    stale = LocalFile("growing", source, 10)  # collected when it was smaller

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(201, json={})

    with client_for(handler) as client, pytest.raises(CliError, match="grew while it was being uploaded"):
        upload_share(client, [stale], name="x")
    assert issubclass(SourceChanged, OSError)
