"""Transfer protocol v1 framing: length-prefixed CONTROL and DATA frames (sans-I/O).

Wire format of every frame::

    +----------------+--------+------------------------+
    | N: u32 (BE)    | kind   | body: N - 1 bytes      |
    +----------------+--------+------------------------+

``kind`` 0x01 CONTROL: the body is a UTF-8 JSON object (parsed by :mod:`.messages`),
at most :data:`MAX_CONTROL_BODY` bytes.

``kind`` 0x02 DATA: the body is ``file: u32 (BE)``, ``offset: u64 (BE)``, then
1..:data:`MAX_DATA_PAYLOAD` payload bytes.

``kind`` 0x03 SEALED_DATA (sessions that agreed on app-layer encryption, see
:mod:`.transfer_sealing`): the body is ``file: u32 (BE)``, ``offset: u64 (BE)``, then the
sealed bytes: on the first frame of a stream the 24-byte stream header, then one secretstream
chunk (plaintext + 17 bytes). The decoder only checks there are at least 17 sealed bytes; the
receiving machine splits off the header and opens the chunk.

``kind`` 0x04 COMPRESSED_DATA (sessions that agreed on a codec, see
:mod:`.transfer_compression`): the body is ``file: u32 (BE)``, ``offset: u64 (BE)``,
``raw_length: u32 (BE)``, then the compressed bytes (at least one). ``raw_length`` is the
length of the file bytes they decompress to, 1..:data:`MAX_DATA_PAYLOAD`; offsets count file
(uncompressed) bytes. The decoder checks ``raw_length``'s range; the receiving machine
decompresses.

:class:`FrameDecoder` accepts the byte stream cut anywhere (a TCP stream) as well as one
whole frame per call (one WebRTC data-channel message is exactly one frame). The EOF
convention is h11's: ``receive_data(b"")`` means the transport closed.

Copies: a frame that arrives inside one ``receive_data`` call is returned as a
``memoryview`` slice of the caller's ``bytes`` (no copy); a frame split across calls is
joined once. Encoding copies the payload once (into the single ``bytes`` message that a
data channel needs).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "LENGTH_PREFIX_SIZE",
    "FRAME_HEADER_SIZE",
    "DATA_HEADER_SIZE",
    "DATA_FRAME_OVERHEAD",
    "SEAL_HEADER_SIZE",
    "SEAL_TAG_SIZE",
    "SEALED_FRAME_OVERHEAD",
    "MAX_SEALED_PAYLOAD",
    "RAW_LENGTH_SIZE",
    "COMPRESSED_HEADER_SIZE",
    "COMPRESSED_FRAME_OVERHEAD",
    "MAX_CONTROL_BODY",
    "MAX_DATA_PAYLOAD",
    "MAX_FRAME_LENGTH",
    "FrameKind",
    "ControlFrame",
    "DataFrame",
    "SealedDataFrame",
    "CompressedDataFrame",
    "Frame",
    "FrameDecoder",
    "encode_control_frame",
    "encode_data_frame",
    "encode_sealed_data_frame",
    "encode_compressed_data_frame",
    "data_payload_limit",
    "sealed_payload_limit",
]

LENGTH_PREFIX_SIZE = 4
"""Size of the ``N`` length prefix."""

FRAME_HEADER_SIZE = LENGTH_PREFIX_SIZE + 1
"""Length prefix plus the kind byte."""

DATA_HEADER_SIZE = 12
"""``file: u32`` + ``offset: u64`` at the start of a DATA body."""

DATA_FRAME_OVERHEAD = FRAME_HEADER_SIZE + DATA_HEADER_SIZE
"""Bytes a DATA frame adds to its payload (17)."""

MAX_CONTROL_BODY = 1 << 20
"""Largest CONTROL body (the JSON text), in bytes."""

MAX_DATA_PAYLOAD = 1 << 20
"""Largest DATA payload, in bytes."""

MAX_FRAME_LENGTH = 1 + DATA_HEADER_SIZE + MAX_DATA_PAYLOAD
"""Largest acceptable value of ``N`` for any kind."""

SEAL_HEADER_SIZE = 24
"""Secretstream header that starts each sealed stream (libsodium ``HEADERBYTES``)."""

SEAL_TAG_SIZE = 17
"""Bytes a secretstream chunk adds to its plaintext (libsodium ``ABYTES``)."""

SEALED_FRAME_OVERHEAD = DATA_FRAME_OVERHEAD + SEAL_TAG_SIZE
"""Bytes a SEALED_DATA frame adds to its plaintext (34); the first frame of a stream adds
:data:`SEAL_HEADER_SIZE` more (58)."""

MAX_SEALED_PAYLOAD = MAX_DATA_PAYLOAD - SEAL_HEADER_SIZE - SEAL_TAG_SIZE
"""Largest plaintext in one SEALED_DATA frame: the frame, header included, stays within
:data:`MAX_FRAME_LENGTH`."""

RAW_LENGTH_SIZE = 4
"""``raw_length: u32`` after the position in a COMPRESSED_DATA body."""

COMPRESSED_HEADER_SIZE = DATA_HEADER_SIZE + RAW_LENGTH_SIZE
"""``file`` + ``offset`` + ``raw_length`` at the start of a COMPRESSED_DATA body (16)."""

COMPRESSED_FRAME_OVERHEAD = FRAME_HEADER_SIZE + COMPRESSED_HEADER_SIZE
"""Bytes a COMPRESSED_DATA frame adds to its compressed bytes (21)."""

_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1
_LENGTH = struct.Struct(">I")
_HEADER = struct.Struct(">IB")
_DATA_PREFIX = struct.Struct(">IBIQ")
_DATA_HEADER = struct.Struct(">IQ")
_COMPRESSED_HEADER = struct.Struct(">IQI")
_COMPRESSED_PREFIX = struct.Struct(">IBIQI")


class FrameKind(IntEnum):
    """The kind byte."""

    CONTROL = 0x01
    DATA = 0x02
    SEALED_DATA = 0x03
    COMPRESSED_DATA = 0x04


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlFrame:
    """A CONTROL frame; ``body`` is the undecoded JSON text (see :mod:`.messages`)."""

    body: bytes

    def __post_init__(self) -> None:
        if type(self.body) is not bytes:
            raise LocalProtocolError("control body must be bytes", code="bad_argument")
        if len(self.body) > MAX_CONTROL_BODY:
            raise LocalProtocolError(
                f"control body of {len(self.body)} bytes exceeds {MAX_CONTROL_BODY}",
                code="frame_too_large",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class DataFrame:
    """A DATA frame: ``payload`` holds bytes ``[offset, offset + len(payload))`` of ``file``.

    ``payload`` is a read-only ``memoryview`` over immutable ``bytes``: it stays valid
    for as long as it is referenced and can be handed to ``os.write`` without a copy.
    """

    file: int
    offset: int
    payload: memoryview

    def __post_init__(self) -> None:
        if not 0 <= self.file <= _U32_MAX or not 0 <= self.offset <= _U64_MAX:
            raise LocalProtocolError("file or offset out of range", code="bad_argument")
        if not 1 <= len(self.payload) <= MAX_DATA_PAYLOAD:
            raise LocalProtocolError(
                f"payload of {len(self.payload)} bytes is outside 1..{MAX_DATA_PAYLOAD}",
                code="bad_argument",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedDataFrame:
    """A SEALED_DATA frame for bytes of ``file`` from ``offset`` on; ``sealed`` is everything
    after the 12-byte position (stream header if first, then the chunk), a read-only
    ``memoryview`` like :attr:`DataFrame.payload`. Only an opener can tell the plaintext."""

    file: int
    offset: int
    sealed: memoryview

    def __post_init__(self) -> None:
        if not 0 <= self.file <= _U32_MAX or not 0 <= self.offset <= _U64_MAX:
            raise LocalProtocolError("file or offset out of range", code="bad_argument")
        if not SEAL_TAG_SIZE <= len(self.sealed) <= MAX_DATA_PAYLOAD:
            raise LocalProtocolError(
                f"sealed body of {len(self.sealed)} bytes is outside "
                f"{SEAL_TAG_SIZE}..{MAX_DATA_PAYLOAD}",
                code="bad_argument",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressedDataFrame:
    """A COMPRESSED_DATA frame: ``compressed`` decompresses (per the session's codec) to bytes
    ``[offset, offset + raw_length)`` of ``file``. ``compressed`` is a read-only ``memoryview``
    like :attr:`DataFrame.payload`; only the codec can tell whether ``raw_length`` is true."""

    file: int
    offset: int
    raw_length: int
    compressed: memoryview

    def __post_init__(self) -> None:
        if not 0 <= self.file <= _U32_MAX or not 0 <= self.offset <= _U64_MAX:
            raise LocalProtocolError("file or offset out of range", code="bad_argument")
        if not 1 <= self.raw_length <= MAX_DATA_PAYLOAD:
            raise LocalProtocolError(
                f"raw_length {self.raw_length} is outside 1..{MAX_DATA_PAYLOAD}",
                code="bad_argument",
            )
        if not 1 <= len(self.compressed) <= MAX_DATA_PAYLOAD - RAW_LENGTH_SIZE:
            raise LocalProtocolError(
                f"compressed body of {len(self.compressed)} bytes is outside "
                f"1..{MAX_DATA_PAYLOAD - RAW_LENGTH_SIZE}",
                code="bad_argument",
            )


Frame = ControlFrame | DataFrame | SealedDataFrame | CompressedDataFrame


def encode_control_frame(body: bytes) -> bytes:
    """Frame a CONTROL body. Raises ``LocalProtocolError(code="frame_too_large")``."""
    frame = ControlFrame(body=body)
    return _HEADER.pack(1 + len(frame.body), FrameKind.CONTROL) + frame.body


def encode_data_frame(file: int, offset: int, payload: bytes | bytearray | memoryview) -> bytes:
    """Frame a DATA payload (copied once). Raises ``LocalProtocolError(code="bad_argument")``
    if ``file``/``offset`` do not fit u32/u64 or the payload is empty or too large."""
    view = memoryview(payload).cast("B")
    DataFrame(file=file, offset=offset, payload=view)
    prefix = _DATA_PREFIX.pack(1 + DATA_HEADER_SIZE + len(view), FrameKind.DATA, file, offset)
    return b"".join((prefix, view))


def encode_sealed_data_frame(
    file: int, offset: int, sealed: bytes | bytearray | memoryview, *, header: bytes = b""
) -> bytes:
    """Frame a sealed chunk, preceded by the stream ``header`` on a stream's first frame (both
    copied once). Raises ``LocalProtocolError(code="bad_argument")`` like
    :func:`encode_data_frame`."""
    view = memoryview(sealed).cast("B")
    if header and len(header) != SEAL_HEADER_SIZE:
        raise LocalProtocolError(
            f"a stream header is {SEAL_HEADER_SIZE} bytes", code="bad_argument"
        )
    size = len(header) + len(view)
    if not SEAL_TAG_SIZE <= len(view) or size > MAX_DATA_PAYLOAD:
        raise LocalProtocolError(
            f"sealed body of {size} bytes is outside {SEAL_TAG_SIZE}..{MAX_DATA_PAYLOAD}",
            code="bad_argument",
        )
    if not 0 <= file <= _U32_MAX or not 0 <= offset <= _U64_MAX:
        raise LocalProtocolError("file or offset out of range", code="bad_argument")
    prefix = _DATA_PREFIX.pack(1 + DATA_HEADER_SIZE + size, FrameKind.SEALED_DATA, file, offset)
    return b"".join((prefix, header, view))


def encode_compressed_data_frame(
    file: int, offset: int, raw_length: int, compressed: bytes | bytearray | memoryview
) -> bytes:
    """Frame compressed bytes standing for ``raw_length`` file bytes at ``offset`` (copied once).
    Raises ``LocalProtocolError(code="bad_argument")`` if ``file``/``offset`` do not fit u32/u64,
    ``raw_length`` is outside 1..1 MiB or ``compressed`` is empty or too large."""
    view = memoryview(compressed).cast("B")
    CompressedDataFrame(file=file, offset=offset, raw_length=raw_length, compressed=view)
    prefix = _COMPRESSED_PREFIX.pack(
        1 + COMPRESSED_HEADER_SIZE + len(view), FrameKind.COMPRESSED_DATA, file, offset, raw_length
    )
    return b"".join((prefix, view))


def sealed_payload_limit(max_message_size: int) -> int:
    """Largest plaintext whose SEALED_DATA frame, stream header included, fits in
    ``max_message_size`` bytes (capped at :data:`MAX_SEALED_PAYLOAD`), e.g. ``262144 -> 262086``."""
    limit = min(max_message_size - SEALED_FRAME_OVERHEAD - SEAL_HEADER_SIZE, MAX_SEALED_PAYLOAD)
    if limit < 1:
        raise LocalProtocolError(
            f"a {max_message_size}-byte message cannot carry a SEALED_DATA frame",
            code="bad_argument",
        )
    return limit


def data_payload_limit(max_message_size: int) -> int:
    """Largest payload whose DATA frame fits in ``max_message_size`` bytes (capped at
    :data:`MAX_DATA_PAYLOAD`), e.g. ``65536 -> 65519``."""
    limit = min(max_message_size - DATA_FRAME_OVERHEAD, MAX_DATA_PAYLOAD)
    if limit < 1:
        raise LocalProtocolError(
            f"a {max_message_size}-byte message cannot carry a DATA frame", code="bad_argument"
        )
    return limit


class FrameDecoder:
    """Incremental frame decoder: ``receive_data`` bytes, then drain ``next_frame``.

    Contract:

    * ``receive_data(data)`` buffers ``data`` (``bytes`` is kept without a copy; other
      buffers are copied). ``receive_data(b"")`` signals EOF; calling ``receive_data``
      after EOF raises ``LocalProtocolError(code="after_eof")``.
    * ``next_frame()`` returns the next complete frame, or ``None`` when more data is
      needed or (after EOF) the stream ended cleanly on a frame boundary
      (:attr:`closed` tells these apart).
    * A malformed stream raises ``RemoteProtocolError`` as soon as the offending header
      bytes are buffered, with ``code`` one of ``frame_empty`` (N == 0),
      ``frame_too_large``, ``frame_kind`` (unknown kind), ``frame_malformed`` (DATA body
      without payload, SEALED_DATA body shorter than one chunk, COMPRESSED_DATA body without
      compressed bytes or with ``raw_length`` outside 1..1 MiB) or ``frame_truncated`` (EOF
      inside a frame). Afterwards the decoder is broken and every call raises
      ``LocalProtocolError(code="state")``.
    """

    __slots__ = ("_chunks", "_buffered", "_eof", "_broken")

    def __init__(self) -> None:
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._eof = False
        self._broken = False

    @property
    def at_eof(self) -> bool:
        """EOF has been received (frames buffered before it may still be pending)."""
        return self._eof

    @property
    def closed(self) -> bool:
        """EOF has been received and every buffered byte has been consumed."""
        return self._eof and self._buffered == 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return self._buffered

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer ``data``; ``b""`` means EOF."""
        self._check_usable()
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF", code="after_eof")
        if not data:
            self._eof = True
            return
        if type(data) is not bytes:
            data = bytes(data)
        self._chunks.append(memoryview(data))
        self._buffered += len(data)

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` (see the class contract)."""
        self._check_usable()
        try:
            return self._next_frame()
        except RemoteProtocolError:
            self._broken = True
            raise

    def _check_usable(self) -> None:
        if self._broken:
            raise LocalProtocolError("decoder failed earlier", code="state")

    def _next_frame(self) -> Frame | None:
        if self._buffered < LENGTH_PREFIX_SIZE:
            return self._need_more()
        (length,) = _LENGTH.unpack(self._peek(LENGTH_PREFIX_SIZE))
        _check_length(length)
        if self._buffered < FRAME_HEADER_SIZE:
            return self._need_more()
        kind = self._peek(FRAME_HEADER_SIZE)[LENGTH_PREFIX_SIZE]
        _check_kind(kind, length - 1)
        if kind == FrameKind.COMPRESSED_DATA:
            if self._buffered < FRAME_HEADER_SIZE + COMPRESSED_HEADER_SIZE:
                return self._need_more()  # the body holds more than that: no wait past the frame
            _check_raw_length(self._peek(FRAME_HEADER_SIZE + COMPRESSED_HEADER_SIZE)[-4:])
        if self._buffered < LENGTH_PREFIX_SIZE + length:
            return self._need_more()
        self._take(FRAME_HEADER_SIZE)
        return _frame(kind, self._take(length - 1))

    def _need_more(self) -> Frame | None:
        """``None`` (wait for more bytes), unless EOF cut a frame short."""
        if self._eof and self._buffered:
            raise RemoteProtocolError(
                f"stream ended inside a frame ({self._buffered} bytes left)",
                code="frame_truncated",
            )
        return None

    def _peek(self, size: int) -> bytes:
        """The first ``size`` buffered bytes (small; copied)."""
        head = self._chunks[0]
        if len(head) >= size:
            return bytes(head[:size])
        out = bytearray()
        for chunk in self._chunks:
            out += chunk[: size - len(out)]
            if len(out) == size:
                break
        return bytes(out)

    def _take(self, size: int) -> memoryview:
        """Consume ``size`` buffered bytes: a zero-copy slice when they sit in one chunk,
        otherwise one join."""
        if size == 0:
            return memoryview(b"")
        self._buffered -= size
        head = self._chunks[0]
        if len(head) >= size:
            return self._consume_head(head, size)
        parts = []
        while size:
            head = self._chunks[0]
            part = self._consume_head(head, min(size, len(head)))
            parts.append(part)
            size -= len(part)
        return memoryview(b"".join(parts))

    def _consume_head(self, head: memoryview, size: int) -> memoryview:
        if len(head) == size:
            self._chunks.popleft()
        else:
            self._chunks[0] = head[size:]
        return head[:size]


def _frame(kind: int, body: memoryview) -> Frame:
    """The frame of ``kind`` whose (already checked) body is ``body``."""
    if kind == FrameKind.CONTROL:
        return ControlFrame(body=bytes(body))
    if kind == FrameKind.COMPRESSED_DATA:
        file, offset, raw_length = _COMPRESSED_HEADER.unpack_from(body)
        return CompressedDataFrame(
            file=file,
            offset=offset,
            raw_length=raw_length,
            compressed=body[COMPRESSED_HEADER_SIZE:],
        )
    file, offset = _DATA_HEADER.unpack_from(body)
    if kind == FrameKind.SEALED_DATA:
        return SealedDataFrame(file=file, offset=offset, sealed=body[DATA_HEADER_SIZE:])
    return DataFrame(file=file, offset=offset, payload=body[DATA_HEADER_SIZE:])


def _check_length(length: int) -> None:
    if length == 0:
        raise RemoteProtocolError("frame length is 0", code="frame_empty")
    if length > MAX_FRAME_LENGTH:
        raise RemoteProtocolError(
            f"frame length {length} exceeds {MAX_FRAME_LENGTH}", code="frame_too_large"
        )


def _check_kind(kind: int, body_size: int) -> None:
    if kind == FrameKind.CONTROL:
        if body_size > MAX_CONTROL_BODY:
            raise RemoteProtocolError(
                f"control body of {body_size} bytes exceeds {MAX_CONTROL_BODY}",
                code="frame_too_large",
            )
    elif kind == FrameKind.DATA:
        if body_size <= DATA_HEADER_SIZE:
            raise RemoteProtocolError(
                f"DATA body of {body_size} bytes has no payload", code="frame_malformed"
            )
    elif kind == FrameKind.SEALED_DATA:
        if body_size < DATA_HEADER_SIZE + SEAL_TAG_SIZE:
            raise RemoteProtocolError(
                f"SEALED_DATA body of {body_size} bytes holds no sealed chunk",
                code="frame_malformed",
            )
    elif kind == FrameKind.COMPRESSED_DATA:
        if body_size <= COMPRESSED_HEADER_SIZE:
            raise RemoteProtocolError(
                f"COMPRESSED_DATA body of {body_size} bytes holds no compressed bytes",
                code="frame_malformed",
            )
    else:
        raise RemoteProtocolError(f"unknown frame kind 0x{kind:02x}", code="frame_kind")


def _check_raw_length(field: bytes) -> None:
    (raw_length,) = _LENGTH.unpack(field)
    if not 1 <= raw_length <= MAX_DATA_PAYLOAD:
        raise RemoteProtocolError(
            f"COMPRESSED_DATA raw_length {raw_length} is outside 1..{MAX_DATA_PAYLOAD}",
            code="frame_malformed",
        )
