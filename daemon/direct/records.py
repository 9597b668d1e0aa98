"""The record layer of a direct TCP stream: secretstream XChaCha20-Poly1305 records (sans-I/O).

Each direction of the stream, after the handshake, is::

    header (24 bytes: the secretstream header of this direction)
    record*:  L: u32 (BE)  ||  ciphertext (L bytes = plaintext + 17)

The 4 length bytes are the associated data of their record, so a changed length fails
authentication like a changed byte of ciphertext does. ``L`` is checked before anything is read:
``TAG_SIZE <= L <= MAX_RECORD + TAG_SIZE``. Records carry tag MESSAGE; the last record of a
clean close is an empty one with tag FINAL, after which nothing may follow. secretstream's
internal nonce makes every record depend on its position: a record dropped, replayed, reordered,
cut or sealed under another key fails to open, and the reader is then dead for good.

A stream that ends (TCP EOF) before its FINAL record was cut short: the driver reports that as a
broken connection, never as a clean end.

The reader reads exact sizes (:attr:`RecordReader.bytes_needed`), like the handshake, so a driver
can ``recv_into`` a buffer of exactly the record's size.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import nacl.exceptions
from nacl.bindings import (
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_init_push,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)

from daemon.crypto.sealing import HEADER_SIZE, KEY_SIZE, TAG_SIZE
from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["MAX_RECORD", "PREFIX_SIZE", "HEADER_SIZE", "TAG_SIZE", "RecordError", "Record", "RecordSealer",
           "RecordReader"]

MAX_RECORD = (1 << 20) + 64
"""Largest plaintext of one record: a whole 1 MiB DATA frame (1 MiB + 17 bytes) fits in one."""
PREFIX_SIZE = 4

_PREFIX = struct.Struct(">I")
_MESSAGE = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_FINAL = crypto_secretstream_xchacha20poly1305_TAG_FINAL


class RecordError(RemoteProtocolError):
    """A record did not check out: bad length, failed authentication, data after FINAL."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="direct_record")


def _check_key(key: bytes) -> bytes:
    if type(key) is not bytes or len(key) != KEY_SIZE:
        raise LocalProtocolError(f"a stream key is {KEY_SIZE} bytes", code="bad_argument")
    return key


class RecordSealer:
    """The sending end of one direction. Send :attr:`header` first, then what :meth:`seal` returns."""

    __slots__ = ("_state", "header", "_finished")

    def __init__(self, key: bytes) -> None:
        self._state = crypto_secretstream_xchacha20poly1305_state()
        self.header: bytes = crypto_secretstream_xchacha20poly1305_init_push(self._state, _check_key(key))
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def seal(self, plaintext: bytes, *, final: bool = False) -> tuple[bytes, bytes]:
        """``(length prefix, ciphertext)`` of one record; send them in that order. ``final`` ends
        the stream (use ``b""``). Raises ``LocalProtocolError`` for a record over :data:`MAX_RECORD`
        or after FINAL."""
        if self._finished:
            raise LocalProtocolError("the stream was finished", code="state")
        if len(plaintext) > MAX_RECORD:
            raise LocalProtocolError(f"a record holds at most {MAX_RECORD} bytes", code="bad_argument")
        data = plaintext if type(plaintext) is bytes else bytes(plaintext)
        prefix = _PREFIX.pack(len(data) + TAG_SIZE)
        sealed = crypto_secretstream_xchacha20poly1305_push(self._state, data, prefix, _FINAL if final else _MESSAGE)
        self._finished = final
        return prefix, sealed


@dataclass(frozen=True, slots=True)
class Record:
    plaintext: bytes
    final: bool


class _Reading(enum.Enum):
    HEADER = "header"
    PREFIX = "prefix"
    BODY = "body"
    CLOSED = "closed"
    FAILED = "failed"


class RecordReader:
    """The receiving end of one direction: feed exactly :attr:`bytes_needed` bytes at a time to
    :meth:`receive`, which returns a :class:`Record` once one opened (None after the header or a
    length prefix)."""

    __slots__ = ("_key", "_state", "_reading", "_prefix", "_length")

    def __init__(self, key: bytes) -> None:
        self._key = _check_key(key)
        self._state = crypto_secretstream_xchacha20poly1305_state()
        self._reading = _Reading.HEADER
        self._prefix = b""
        self._length = 0

    @property
    def closed(self) -> bool:
        """The FINAL record opened: the stream ended cleanly."""
        return self._reading is _Reading.CLOSED

    @property
    def bytes_needed(self) -> int:
        """Exact size of the next :meth:`receive` (0 once closed or failed)."""
        return {_Reading.HEADER: HEADER_SIZE, _Reading.PREFIX: PREFIX_SIZE, _Reading.BODY: self._length}.get(
            self._reading, 0)

    def receive(self, data: bytes | bytearray | memoryview) -> Record | None:
        """Take the next :attr:`bytes_needed` bytes. Raises :class:`RecordError` for a bad length or
        a record that does not open (the reader is then dead)."""
        if self._reading in (_Reading.CLOSED, _Reading.FAILED):
            raise RecordError("data after the end of the stream" if self.closed else "the stream failed earlier")
        if len(data) != self.bytes_needed:
            raise LocalProtocolError(f"receive() takes exactly {self.bytes_needed} bytes", code="bad_argument")
        try:
            return self._receive(data)
        except RecordError:
            self._reading = _Reading.FAILED
            raise

    def _receive(self, data: bytes | bytearray | memoryview) -> Record | None:
        if self._reading is _Reading.HEADER:
            crypto_secretstream_xchacha20poly1305_init_pull(self._state, bytes(data), self._key)
            self._reading = _Reading.PREFIX
            return None
        if self._reading is _Reading.PREFIX:
            self._prefix = bytes(data)
            (length,) = _PREFIX.unpack(self._prefix)
            if not TAG_SIZE <= length <= MAX_RECORD + TAG_SIZE:
                raise RecordError(f"record length {length} outside {TAG_SIZE}..{MAX_RECORD + TAG_SIZE}")
            self._length = length
            self._reading = _Reading.BODY
            return None
        ciphertext = data if type(data) is bytes else bytes(data)
        try:
            plaintext, tag = crypto_secretstream_xchacha20poly1305_pull(self._state, ciphertext, self._prefix)
        except nacl.exceptions.CryptoError:
            raise RecordError("a record failed authentication") from None
        if tag not in (_MESSAGE, _FINAL):
            raise RecordError(f"a record with tag {tag}")
        if tag == _FINAL:
            if plaintext:
                raise RecordError("the FINAL record carries data")
            self._reading = _Reading.CLOSED
            return Record(b"", True)
        self._reading = _Reading.PREFIX
        return Record(plaintext, False)
