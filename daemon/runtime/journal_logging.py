"""Where log records go: the systemd journal when the process runs under systemd, stderr otherwise.

systemd connects a service's stderr to the journal and says so in ``JOURNAL_STREAM``
(``DEVICE:INODE`` of that stream; a child that redirected stderr elsewhere no longer matches).
Then, in order of preference:

- with ``systemd-python`` installed (the ``systemd`` extra; the Debian package ships it), records
  go to the journal natively: priority, logger name (``LOGGER``), source location and exception
  text are fields of their own (``journalctl -u doorstep -o verbose``);
- without it, each line goes to stderr with a ``<N>`` syslog-priority prefix, which journald
  turns into the entry's priority (``SyslogLevelPrefix=`` is on by default), so
  ``journalctl -p warning`` still works. Tracebacks keep their priority on every line.

Anywhere else (a terminal, the tests, a pipe): ``time LEVEL logger: message`` lines on stderr.
stdout stays free for commands' output (``--json``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

__all__ = ["configure_logging", "stderr_is_journal", "SYSLOG_IDENTIFIER"]

SYSLOG_IDENTIFIER = "doorstep"
TERMINAL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"  # the journal stamps time, host, pid and priority itself


def stderr_is_journal(environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is the journal stream ``JOURNAL_STREAM`` names."""
    environ = os.environ if environ is None else environ
    device, sep, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (sep and device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a real file (pytest's capture)
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class PriorityPrefixFormatter(logging.Formatter):
    """``<N>`` syslog priority before every line of a record (sd-daemon(3) prefixes)."""

    PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in self.PRIORITIES if record.levelno >= level), 7)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines() or [""])


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler  # systemd-python: optional, C extension
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)


def configure_logging(level: int, *, environ: Mapping[str, str] | None = None) -> str:
    """Install one root handler at ``level`` (as ``logging.basicConfig``: nothing changes if the
    root logger has handlers already); return where records go: ``"journal"`` (native,
    systemd-python), ``"journal-stream"`` (stderr with priority prefixes) or ``"stderr"``."""
    if stderr_is_journal(environ):
        handler, kind = _journal_handler(), "journal"
        if handler is None:
            handler, kind = logging.StreamHandler(sys.stderr), "journal-stream"
            handler.setFormatter(PriorityPrefixFormatter(JOURNAL_FORMAT))
        else:
            handler.setFormatter(logging.Formatter(JOURNAL_FORMAT))
    else:
        handler, kind = logging.StreamHandler(sys.stderr), "stderr"
        handler.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])  # a no-op if the root logger has handlers
    return kind
