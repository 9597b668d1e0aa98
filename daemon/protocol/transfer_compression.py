"""Per-frame compression of DATA as the transfer machines see it: the interface, no codec.

A session *compresses* when both machines are built with a :class:`Compression` object whose
``name`` both ``hello`` messages list (``"compress": ["zstd"]``). The machines stay stdlib-only and
sans-I/O: they decide *which* chunk goes in which frame, the injected object does the work (the
driver passes ``daemon.transfer.zstd_codec.ZstdCompression``). Same design as ``Sealing``
(:mod:`.transfer_sealing`), for the same reason: the rules (what counts against the window, what
a receiver may accept, what is a remote error) stay in one place.

Agreement: each side lists the codec it has in its ``hello`` (the field is absent without one).
The sender sends COMPRESSED_DATA frames only when its own ``hello`` and the peer's both name its
codec; the receiver accepts them only then, and always accepts plain DATA too (the sender chooses
per chunk). A COMPRESSED_DATA frame in a session that did not agree on compression raises
``RemoteProtocolError(code="compression_mismatch")``. Unlike sealing, a difference is not an
error: without agreement the session simply sends plain DATA.

Content choice (sender): each chunk of a file is offered to :meth:`Compression.compress` until
:data:`GIVE_UP_AFTER` chunks of that file in a row did not shrink; the rest of the file then goes
plain, so already-compressed data (JPEG, video, archives, random bytes) costs a couple of trial
compressions per file. A chunk is sent compressed only when its frame is smaller than the plain
DATA frame would be.

Limits (receiver): ``raw_length`` is 1..``MAX_DATA_PAYLOAD`` (checked by the frame decoder) and
must fit the current file, its position and the window *before* anything is decompressed; the
codec must refuse to produce more than ``raw_length`` bytes (a decompression bomb is the peer's
fault), and output of any other length than ``raw_length`` raises
``RemoteProtocolError(code="bad_compression")``. A frame that fails emits no event.

Sealed sessions never compress in this version (a sealed machine ignores its ``compression`` and
does not advertise it): compressing before sealing would need its own stream rules, and length
leaks. The direct TCP path encrypts its whole stream and runs unsealed machines, so it compresses.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = [
    "COMPRESSION_MISMATCH",
    "BAD_COMPRESSION",
    "GIVE_UP_AFTER",
    "MAX_CODECS",
    "Compression",
    "is_codec_name",
]

COMPRESSION_MISMATCH = "compression_mismatch"
"""``error.code`` for a COMPRESSED_DATA frame in a session that did not agree on compression."""

BAD_COMPRESSION = "bad_compression"
"""``error.code`` for a COMPRESSED_DATA frame whose payload does not decompress to exactly
``raw_length`` bytes (garbage, truncated, trailing bytes, or a bomb)."""

GIVE_UP_AFTER = 2
"""Chunks of one file in a row that did not shrink, after which the sender stops trying to
compress the rest of that file."""

MAX_CODECS = 8
"""Most codec names one ``hello`` may list."""

_CODEC_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def is_codec_name(name: object) -> bool:
    """``name`` is a valid codec name: 1..32 of ``[a-z0-9_-]``."""
    return type(name) is str and _CODEC_NAME.fullmatch(name) is not None


class Compression(Protocol):
    """A codec for the chunks of one session (``daemon.transfer.zstd_codec.ZstdCompression``).

    One object per session and side: it may keep (non thread-safe) compressor state. Each chunk is
    compressed on its own: any frame decompresses without the ones before it.
    """

    @property
    def name(self) -> str:
        """The codec's name in ``hello`` (``"zstd"``); see :func:`is_codec_name`."""
        ...

    def compress(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """``data`` compressed, or ``None`` when the result is not worth sending (it did not
        shrink enough). Never raises for any input."""
        ...

    def decompress(self, data: bytes | bytearray | memoryview, raw_length: int) -> bytes:
        """The bytes ``data`` decompresses to, which must be exactly ``raw_length`` (1..1 MiB).

        Raises ``ValueError`` for anything else (not this codec's format, truncated, trailing
        bytes, or more output than ``raw_length``), *without* producing more than ``raw_length``
        bytes: the input is the peer's and may be a decompression bomb.
        """
        ...
