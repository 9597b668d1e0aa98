"""Log routing: the journal when stderr is the journal stream systemd names, stderr otherwise."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from daemon.runtime import journal_logging
from daemon.runtime.journal_logging import PriorityPrefixFormatter, configure_logging, stderr_is_journal


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[io.TextIOWrapper]:
    with (tmp_path / "stderr").open("w+") as f:
        yield f


def journal_stream_of(f: io.TextIOWrapper) -> dict[str, str]:
    st = os.fstat(f.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


@contextmanager
def bare_root(stream: io.TextIOWrapper) -> Iterator[logging.Logger]:
    """The root logger without handlers (pytest's capture handlers too: they are added around the
    test body, so this runs inside it) and stderr replaced by ``stream``; restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, sys.stderr
    root.handlers.clear()
    sys.stderr = stream
    try:
        yield root
    finally:
        root.handlers[:], root.level, sys.stderr = saved


def test_stderr_is_the_journal_only_when_the_stream_matches(stream: io.TextIOWrapper, tmp_path: Path) -> None:
    assert stderr_is_journal(journal_stream_of(stream), stream)
    with (tmp_path / "other").open("w") as other:  # a child that redirected stderr elsewhere
        assert not stderr_is_journal(journal_stream_of(other), stream)
    for value in ("", "8", "8:x", "a:1", ":"):
        assert not stderr_is_journal({"JOURNAL_STREAM": value}, stream)
    assert not stderr_is_journal({}, stream)
    assert not stderr_is_journal(journal_stream_of(stream), io.StringIO())  # no file descriptor


def test_every_line_carries_the_syslog_priority() -> None:
    formatter = PriorityPrefixFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("doorstep.x", logging.ERROR, __file__, 1, "first\nsecond", None, None)
    assert formatter.format(record) == "<3>doorstep.x: first\n<3>second"
    for level, prefix in ((logging.CRITICAL, "<2>"), (logging.WARNING, "<4>"), (logging.INFO, "<6>"),
                          (logging.DEBUG, "<7>")):
        record = logging.LogRecord("d", level, __file__, 1, "m", None, None)
        assert formatter.format(record) == f"{prefix}d: m"


def test_a_traceback_keeps_its_priority_on_every_line() -> None:
    formatter = PriorityPrefixFormatter("%(message)s")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("d", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: boom"


def test_outside_systemd_lines_go_to_stderr_with_a_time(stream: io.TextIOWrapper) -> None:
    with bare_root(stream):
        assert configure_logging(logging.INFO, environ={}) == "stderr"
        logging.getLogger("doorstep.test").info("hello")
    stream.seek(0)
    assert stream.read().rstrip().endswith("INFO doorstep.test: hello")


def test_journal_stream_without_systemd_python_gets_priority_prefixes(
    stream: io.TextIOWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_logging, "_journal_handler", lambda: None)
    with bare_root(stream):
        assert configure_logging(logging.INFO, environ=journal_stream_of(stream)) == "journal-stream"
        logging.getLogger("doorstep.test").warning("careful")
    stream.seek(0)
    assert stream.read() == "<4>doorstep.test: careful\n"


def test_journal_stream_with_systemd_python_logs_natively(stream: io.TextIOWrapper) -> None:
    journal = pytest.importorskip("systemd.journal", reason="systemd-python (the systemd extra) is not installed")
    sent: list[dict[str, object]] = []
    with bare_root(stream) as root:
        assert configure_logging(logging.INFO, environ=journal_stream_of(stream)) == "journal"
        (handler,) = root.handlers
        assert isinstance(handler, journal.JournalHandler)

        def send(message: str, /, **fields: object) -> None:  # no journald here
            sent.append({**fields, "MESSAGE": message})

        handler.send = send
        logging.getLogger("doorstep.test").error("it broke")
    (entry,) = sent
    assert entry["MESSAGE"] == "doorstep.test: it broke"
    assert entry["PRIORITY"] == "3" and entry["LOGGER"] == "doorstep.test"
    assert entry["SYSLOG_IDENTIFIER"] == "doorstep"
    stream.seek(0)
    assert stream.read() == ""  # nothing doubled on stderr


def test_an_already_configured_root_logger_is_left_alone(stream: io.TextIOWrapper) -> None:
    mine = logging.NullHandler()
    with bare_root(stream) as root:
        root.addHandler(mine)
        configure_logging(logging.DEBUG, environ=journal_stream_of(stream))
        assert root.handlers == [mine]
