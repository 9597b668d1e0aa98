"""What the CLI writes: one JSON document on stdout with ``--json``, else human text on stdout.

Errors never come through here: they are :class:`~daemon.runtime.cli_client.CliError` and ``main``
prints them on stderr. Progress that is not the command's result goes to :attr:`Output.progress_stream`
(stdout for people, stderr under ``--json`` so that stdout stays one document).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from rich.filesize import decimal

__all__ = ["Output", "format_table", "human_duration", "human_size", "human_time"]


@dataclass
class Output:
    json: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    def result(self, document: Any, text: str | Sequence[str] = ()) -> None:
        """The command's result: ``document`` as JSON under ``--json``, else ``text`` (lines)."""
        if self.json:
            self.stdout.write(json.dumps(document) + "\n")
        else:
            for line in [text] if isinstance(text, str) else text:
                self.stdout.write(line + "\n")
        self.stdout.flush()

    def say(self, text: str) -> None:
        """A human line that is not the result (a step, a hint): stdout, or stderr under ``--json``."""
        stream = self.progress_stream
        stream.write(text + "\n")
        stream.flush()

    @property
    def progress_stream(self) -> IO[str]:
        return self.stderr if self.json else self.stdout

    @property
    def interactive(self) -> bool:
        """Whether live (redrawn) progress fits: the progress stream is a terminal."""
        stream = self.progress_stream
        return hasattr(stream, "isatty") and stream.isatty()


def human_size(size: int | float | None) -> str:
    return "?" if size is None else decimal(int(size))


def human_time(timestamp: float | None, *, short: bool = False) -> str:
    if timestamp is None:
        return "never" if not short else "-"
    return time.strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M", time.localtime(timestamp))


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if 0 < seconds < 1:
        return "<1s"
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces (the last one unpadded); returns the lines."""
    table = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip()
            for row in table]
