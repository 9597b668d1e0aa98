"""App-layer sealing of DATA frames: libsodium secretstream (XChaCha20-Poly1305), one stream per file.

A *stream* covers the bytes of one file sent in one session, from the offset the receiver accepted
to the end of the file. The sender makes a :class:`FrameSealer` (which draws a random 24-byte
``header``: the stream's nonce) and seals each chunk in order; the last chunk carries the FINAL tag.
The receiver makes a :class:`FrameOpener` from that header and opens the chunks in the same order.

What a chunk is bound to:

* its place in the stream: secretstream chains the chunks (an internal counter feeds each nonce),
  so a replayed, dropped, duplicated or reordered chunk fails to open, as does anything after FINAL;
* the associated data ``"doorstep/v1/data-frame" 0x00 | u8 len(id) | transfer id (UTF-8) |
  u32 file index | u64 stream start offset | u64 chunk offset`` (big-endian), so a chunk, or a
  whole stream, cannot be moved to another transfer, another file or another offset;
* its tag: the caller says whether the chunk must be the final one (``final``, which the receiver
  derives from the offered file size), and :meth:`FrameOpener.open` refuses a FINAL chunk where
  it expects more and a non-final chunk where the file must end. A file cut short therefore never
  completes: the receiver never gets a chunk that opens with ``final=True``.

A resume at offset X is a new stream (new header) that starts at X: chunks of an earlier stream
cannot be spliced into it. An empty file is a stream with one empty FINAL chunk.

Overhead: 17 bytes per chunk (:data:`TAG_SIZE`, libsodium's ``ABYTES``) and the 24-byte
:data:`HEADER_SIZE` header once per stream. The key is 32 bytes (:data:`KEY_SIZE`); the same key
may seal any number of streams, since each header is random.

Errors: a chunk that does not open raises :class:`SealError` (a ``ValueError``), and the opener is
then broken for good (every later call raises too). Misuse with local arguments (a short key, a
chunk sealed at the wrong offset or after FINAL) raises a plain ``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

import struct

import nacl.exceptions
from nacl.bindings import (
    crypto_secretstream_xchacha20poly1305_ABYTES,
    crypto_secretstream_xchacha20poly1305_HEADERBYTES,
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_init_push,
    crypto_secretstream_xchacha20poly1305_KEYBYTES,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)

__all__ = [
    "KEY_SIZE",
    "HEADER_SIZE",
    "TAG_SIZE",
    "FRAME_LABEL",
    "SealError",
    "FrameSealer",
    "FrameOpener",
    "SealingKey",
]

KEY_SIZE: int = crypto_secretstream_xchacha20poly1305_KEYBYTES
"""Length of the sealing key (32)."""

HEADER_SIZE: int = crypto_secretstream_xchacha20poly1305_HEADERBYTES
"""Length of a stream header, sent once per stream (24)."""

TAG_SIZE: int = crypto_secretstream_xchacha20poly1305_ABYTES
"""Bytes each sealed chunk adds to its plaintext (17: a 1-byte encrypted tag and a 16-byte MAC)."""

FRAME_LABEL = b"doorstep/v1/data-frame\x00"
"""First bytes of every chunk's associated data."""

_TAG_MESSAGE = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = crypto_secretstream_xchacha20poly1305_TAG_FINAL
_STREAM = struct.Struct(">IQ")
_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1


class SealError(ValueError):
    """A sealed chunk did not open: tampered, replayed, reordered, truncated, cut short, sealed
    with another key or for another transfer, file or offset. Say nothing more to the peer.

    It must stay a ``ValueError`` (also if it joins ``daemon.crypto.errors``): the transfer
    machines, which may not import this package, report any ``ValueError`` from an opener as
    ``bad_seal``."""


def _check_key(key: object) -> bytes:
    if type(key) is not bytes or len(key) != KEY_SIZE:
        raise ValueError(f"a sealing key is {KEY_SIZE} bytes")
    return key


def _stream_prefix(transfer_id: str, file_index: int, offset: int) -> bytes:
    """The associated data up to (not including) the chunk offset; validates the arguments."""
    if type(transfer_id) is not str:
        raise TypeError("transfer_id must be a str")
    tid = transfer_id.encode("utf-8")
    if not 1 <= len(tid) <= 255:
        raise ValueError("transfer_id must be 1..255 bytes of UTF-8")
    for name, value, high in (("file_index", file_index, _U32_MAX), ("offset", offset, _U64_MAX)):
        if type(value) is not int or not 0 <= value <= high:
            raise ValueError(f"{name} must be an int in 0..{high}")
    return FRAME_LABEL + bytes((len(tid),)) + tid + _STREAM.pack(file_index, offset)


def _associated_data(prefix: bytes, offset: int) -> bytes:
    return prefix + offset.to_bytes(8, "big")


class FrameSealer:
    """The sending end of one stream: bytes of file ``file_index`` of ``transfer_id`` from
    ``offset`` on. Send :attr:`header` to the receiver before (or with) the first chunk."""

    __slots__ = ("_state", "_prefix", "_next", "_finished", "header", "start")

    def __init__(self, key: bytes, *, transfer_id: str, file_index: int, offset: int) -> None:
        key = _check_key(key)
        self._prefix = _stream_prefix(transfer_id, file_index, offset)
        self._state = crypto_secretstream_xchacha20poly1305_state()
        self.header: bytes = crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        """This stream's header (:data:`HEADER_SIZE` random bytes)."""
        self.start = offset
        """The file offset the stream starts at."""
        self._next = offset
        self._finished = False

    @property
    def finished(self) -> bool:
        """The FINAL chunk has been sealed; the stream takes no more chunks."""
        return self._finished

    def seal(self, payload: bytes | bytearray | memoryview, *, offset: int, final: bool) -> bytes:
        """Seal the chunk holding file bytes ``[offset, offset + len(payload))``.

        Chunks must be sealed in file order (``offset`` = where the previous one ended; the first
        at the stream's start). ``final``: this is the file's last chunk (it may be empty, e.g. for
        an empty file). Returns ``len(payload) + TAG_SIZE`` bytes. Raises ``ValueError`` for an
        offset out of sequence or a chunk after the final one.
        """
        if self._finished:
            raise ValueError("the stream was finished; a resume needs a new FrameSealer")
        if offset != self._next:
            raise ValueError(f"chunk at offset {offset}, the stream is at {self._next}")
        data = payload if type(payload) is bytes else bytes(payload)
        sealed = crypto_secretstream_xchacha20poly1305_push(
            self._state, data, _associated_data(self._prefix, offset), _TAG_FINAL if final else _TAG_MESSAGE
        )
        self._next = offset + len(data)
        self._finished = bool(final)
        return sealed


class FrameOpener:
    """The receiving end of one stream, made from the sender's ``header`` and the same transfer
    id, file index and start offset as the sealer (the receiver knows these independently)."""

    __slots__ = ("_state", "_prefix", "_next", "_finished", "_broken", "start")

    def __init__(
        self, key: bytes, header: bytes | bytearray | memoryview, *, transfer_id: str, file_index: int, offset: int
    ) -> None:
        key = _check_key(key)
        self._prefix = _stream_prefix(transfer_id, file_index, offset)
        self.start = offset
        """The file offset the stream starts at."""
        self._next = offset
        self._finished = False
        self._broken = False
        self._state = crypto_secretstream_xchacha20poly1305_state()
        header = bytes(header)
        if len(header) != HEADER_SIZE:
            self._broken = True
            raise SealError(f"a stream header is {HEADER_SIZE} bytes, got {len(header)}")
        crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)

    @property
    def finished(self) -> bool:
        """The FINAL chunk opened: every byte of the stream arrived, authentic and in order."""
        return self._finished

    @property
    def offset(self) -> int:
        """Where the next chunk must start (the end of the bytes opened so far)."""
        return self._next

    def open(self, sealed: bytes | bytearray | memoryview, *, offset: int, final: bool) -> bytes:
        """Open the next chunk, which must hold file bytes from ``offset`` on and, if ``final``,
        end the file (the receiver knows where the file ends from the offer).

        Returns the plaintext (``len(sealed) - TAG_SIZE`` bytes). Raises :class:`SealError` if the
        chunk does not authenticate, is out of order, carries the wrong tag (FINAL where more must
        follow, or not FINAL where the file ends), or comes after the final chunk; the opener is
        then unusable.
        """
        if self._broken:
            raise SealError("the stream failed earlier")
        self._broken = True  # until this chunk has fully checked out
        if self._finished:
            raise SealError("a chunk after the stream's final chunk")
        if offset != self._next:
            raise SealError(f"chunk claims offset {offset}, the stream is at {self._next}")
        data = sealed if type(sealed) is bytes else bytes(sealed)
        if len(data) < TAG_SIZE:
            raise SealError(f"a sealed chunk is at least {TAG_SIZE} bytes, got {len(data)}")
        try:
            plain, tag = crypto_secretstream_xchacha20poly1305_pull(
                self._state, data, _associated_data(self._prefix, offset)
            )
        except nacl.exceptions.CryptoError:
            raise SealError("a sealed chunk failed authentication") from None
        if tag != (_TAG_FINAL if final else _TAG_MESSAGE):
            what = "ends the stream early" if tag == _TAG_FINAL else "does not end the stream"
            raise SealError(f"the chunk at offset {offset} {what}")
        self._next = offset + len(plain)
        self._finished = bool(final)
        self._broken = False
        return plain

    def finish(self) -> None:
        """Check that the stream ended with its FINAL chunk; raises :class:`SealError` otherwise
        (a stream cut short)."""
        if self._broken or not self._finished:
            raise SealError("the stream ended before its final chunk")


class SealingKey:
    """Makes the sealers and openers of one session from its 32-byte frame key.

    This is the ``Sealing`` object the transfer machines take (``daemon.protocol.transfer_sealing``):
    ``sealer(transfer_id, file, offset)`` and ``opener(transfer_id, file, offset, header)``.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = _check_key(key)

    def __repr__(self) -> str:
        return "SealingKey(<secret>)"

    def sealer(self, transfer_id: str, file: int, offset: int) -> FrameSealer:
        return FrameSealer(self._key, transfer_id=transfer_id, file_index=file, offset=offset)

    def opener(self, transfer_id: str, file: int, offset: int, header: bytes | memoryview) -> FrameOpener:
        return FrameOpener(self._key, header, transfer_id=transfer_id, file_index=file, offset=offset)
