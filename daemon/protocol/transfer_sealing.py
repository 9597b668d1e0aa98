"""App-layer encryption of DATA frames as the transfer machines see it: interfaces, no crypto.

A session is *sealed* when the machines are built with a :class:`Sealing` object (the driver
makes one from the session's frame key with ``daemon.crypto.sealing.SealingKey``). The machines
stay stdlib-only and sans-I/O: they decide *what* is sealed and in which order, the injected
object does the cryptography (libsodium secretstream, XChaCha20-Poly1305). One design, two
alternatives rejected: sealing in the driver around plaintext frames would split the ordering
rules (which chunk is first, which is final, what counts against the window) between two
places; cryptography in this package would break its stdlib-only rule.

Agreement (no downgrade): each side's ``hello`` says whether it seals (``sealed``), and a machine
whose own setting differs raises ``RemoteProtocolError(code="sealing_mismatch")``. The setting
comes from the side's own configuration (the key it was given), never from the peer: the peer's
``hello`` is only compared. A sealed receiver also refuses any plain DATA frame, and an unsealed
one any SEALED_DATA frame (same code), so no frame is ever taken for what it is not.

Streams: the bytes of one file sent in one session are one stream, from the accepted offset to
the end of the file. Its first SEALED_DATA frame carries the stream header, its last chunk the
FINAL tag; an empty file is one frame with an empty FINAL chunk. A resume is a new session with
new machines, so it starts new streams at the accepted offsets. A chunk that does not open
raises ``RemoteProtocolError(code="bad_seal")`` and no event is emitted for it, so a driver that
writes only what ``DataReceived`` gives it writes only authenticated bytes, and ``FileReceived``
comes only after the FINAL chunk opened.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["SEALING_MISMATCH", "BAD_SEAL", "StreamSealer", "StreamOpener", "Sealing"]

SEALING_MISMATCH = "sealing_mismatch"
"""``error.code`` when one side seals DATA frames and the other does not."""

BAD_SEAL = "bad_seal"
"""``error.code`` when a SEALED_DATA frame does not open (or lacks its stream header)."""


class StreamSealer(Protocol):
    """Sending end of one stream (``daemon.crypto.sealing.FrameSealer``)."""

    @property
    def header(self) -> bytes:
        """The stream header (24 bytes), sent in front of the first chunk."""
        ...

    def seal(self, payload: bytes | bytearray | memoryview, *, offset: int, final: bool) -> bytes:
        """The sealed chunk (``len(payload) + 17`` bytes) for file bytes from ``offset`` on."""
        ...


class StreamOpener(Protocol):
    """Receiving end of one stream (``daemon.crypto.sealing.FrameOpener``)."""

    def open(self, sealed: bytes | bytearray | memoryview, *, offset: int, final: bool) -> bytes:
        """The plaintext of the next chunk; raises ``ValueError`` (``SealError``) if it does not
        open, is out of order or carries the wrong tag for ``final``."""
        ...


class Sealing(Protocol):
    """Makes the streams of one session (``daemon.crypto.sealing.SealingKey``).

    ``opener`` may raise ``ValueError`` for an unusable header; the receiving machine reports
    any ``ValueError`` from ``opener`` or ``StreamOpener.open`` as ``bad_seal``.
    """

    def sealer(self, transfer_id: str, file: int, offset: int) -> StreamSealer: ...

    def opener(self, transfer_id: str, file: int, offset: int, header: bytes) -> StreamOpener: ...
