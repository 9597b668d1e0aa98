"""HTTP byte ranges (RFC 9110 section 14) for downloads, and a safe ``Content-Disposition``.

Only a single range is served as 206; a header this module does not understand, or several
ranges, is ignored (the whole file, 200), which RFC 9110 allows.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse

__all__ = ["ByteRange", "Unsatisfiable", "parse_range", "content_disposition"]

_RANGE_RE = re.compile(r"bytes=\s*(\d*)\s*-\s*(\d*)\s*")


class Unsatisfiable(ValueError):
    """The range lies outside the file (answer 416 with ``Content-Range: bytes */size``)."""


class ByteRange:
    """Bytes ``start`` to ``end`` inclusive, of a file of ``size`` bytes."""

    __slots__ = ("start", "end", "size")

    def __init__(self, start: int, end: int, size: int) -> None:
        self.start, self.end, self.size = start, end, size

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteRange) and (self.start, self.end, self.size) == (other.start, other.end, other.size)

    def __repr__(self) -> str:
        return f"ByteRange({self.start}, {self.end}, {self.size})"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range a ``Range`` header asks of a file of ``size`` bytes; None for the whole file
    (no header, another unit, several ranges, or syntax this parser ignores).

    Raises :class:`Unsatisfiable` when the range is well-formed but selects nothing: it starts
    at or after the end (``bytes=size-``), or is a zero suffix (``bytes=-0``), or the file is empty.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(f"bytes=-{suffix} of {size} bytes")
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable(f"bytes={start}- of {size} bytes")
    return ByteRange(start, min(end, size - 1), size)


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` (anything else becomes '_') and the exact name as
    RFC 8187 ``filename*``."""
    fallback = "".join(
        ch if (ch.isascii() and ch.isprintable() and ch not in '"\\;') else "_"
        for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch)
    ) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
