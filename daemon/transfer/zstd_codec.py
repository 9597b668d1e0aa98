"""The zstd codec for COMPRESSED_DATA frames (``daemon.protocol.transfer_compression.Compression``).

One :class:`ZstdCompression` per session and side: it reuses one compressor and one decompressor
(contexts are not thread-safe; the drivers call it from the trio thread only). Each chunk is one
standard zstd frame (content size written, no checksum: the file's SHA-256 is verified anyway),
compressed on its own. Level 1 by measurement (``bench/compression.py``): on 256 KiB chunks of
log/JSON text it shrinks as well as levels 2-3 (to ~23%) at ~480 MB/s of one core, and gives up on
random data at ~5 GB/s.
"""

from __future__ import annotations

import zstandard

__all__ = ["ZstdCompression", "DEFAULT_LEVEL", "WORTH_IT"]

DEFAULT_LEVEL = 1
"""zstd level: 1 compresses 256 KiB text chunks as well as 2-3 and fastest."""

WORTH_IT = 0.9
"""A chunk is sent compressed only when it shrinks to at most this fraction of its size."""


class ZstdCompression:
    """zstd, ``name`` ``"zstd"``; see the module docstring."""

    name = "zstd"

    def __init__(self, level: int = DEFAULT_LEVEL, *, worth_it: float = WORTH_IT) -> None:
        self._compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=False, write_content_size=True
        )
        self._decompressor = zstandard.ZstdDecompressor()
        self._worth_it = worth_it

    def compress(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """``data`` as one zstd frame, or ``None`` when that is over ``worth_it`` of its size."""
        packed = self._compressor.compress(data)
        return packed if len(packed) <= len(data) * self._worth_it else None

    def decompress(self, data: bytes | bytearray | memoryview, raw_length: int) -> bytes:
        """The ``raw_length`` bytes ``data`` (one zstd frame, nothing after it) stands for.

        Raises ``ValueError`` otherwise. At most ``raw_length`` bytes are ever produced: a frame
        header announcing another size is refused before decompressing, and one announcing none is
        decompressed into a ``raw_length`` buffer that may not overflow.
        """
        try:
            announced = zstandard.frame_content_size(data)
            if announced not in (raw_length, -1):  # -1: the header does not say
                raise ValueError(f"the frame announces {announced} bytes, not {raw_length}")
            out = self._decompressor.decompress(
                data, max_output_size=raw_length, allow_extra_data=False
            )
        except zstandard.ZstdError as exc:
            raise ValueError(f"not a zstd frame of {raw_length} bytes: {exc}") from None
        if len(out) != raw_length:
            raise ValueError(f"the frame holds {len(out)} bytes, not {raw_length}")
        return out
