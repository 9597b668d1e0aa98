"""Events and value types returned by the transfer protocol v1 machines.

All are frozen, slotted, keyword-only dataclasses that check their fields on
construction (``LocalProtocolError(code="bad_argument")``): the machines only build them
from values they have already validated, so a failure here is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.protocol.errors import LocalProtocolError
from daemon.protocol.messages import FileEntry

__all__ = [
    "Accepted",
    "Acked",
    "FileVerified",
    "TransferDone",
    "Rejected",
    "Cancelled",
    "PeerFailed",
    "OfferReceived",
    "DataReceived",
    "FileReceived",
    "SenderEvent",
    "ReceiverEvent",
    "ChunkRequest",
    "SenderStatistics",
    "ReceiverStatistics",
]


def _non_negative(**values: object) -> None:
    for name, value in values.items():
        if type(value) is not int or value < 0:
            raise LocalProtocolError(f"{name} must be an int >= 0", code="bad_argument")


def _text(**values: object) -> None:
    for name, value in values.items():
        if type(value) is not str:
            raise LocalProtocolError(f"{name} must be a str", code="bad_argument")


# -- sender events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """The receiver accepted: sending starts at ``offsets[i]`` of each file."""

    offsets: tuple[int, ...]
    window: int

    def __post_init__(self) -> None:
        _non_negative(window=self.window)
        for offset in self.offsets:
            _non_negative(offset=offset)


@dataclass(frozen=True, slots=True, kw_only=True)
class Acked:
    """Bytes ``[0, offset)`` of ``file`` are durable at the receiver."""

    file: int
    offset: int

    def __post_init__(self) -> None:
        _non_negative(file=self.file, offset=self.offset)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileVerified:
    """The receiver verified ``file``'s hash; it is final there."""

    file: int

    def __post_init__(self) -> None:
        _non_negative(file=self.file)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferDone:
    """Every file is verified; the sender is ``DONE``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """The receiver declined the offer; the sender is ``REJECTED``."""

    reason: str

    def __post_init__(self) -> None:
        _text(reason=self.reason)


# -- both sides ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    """The peer cancelled; this machine is ``CANCELLED``."""

    reason: str

    def __post_init__(self) -> None:
        _text(reason=self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerFailed:
    """The peer reported a fatal error; this machine is ``ERROR``. Do not reply."""

    code: str
    message: str

    def __post_init__(self) -> None:
        _text(code=self.code, message=self.message)


# -- receiver events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferReceived:
    """The sender's manifest; answer with ``accept()`` or ``reject()``."""

    transfer_id: str
    files: tuple[FileEntry, ...]

    def __post_init__(self) -> None:
        _text(transfer_id=self.transfer_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    """Validated bytes ``[offset, offset + len(data))`` of ``file``, contiguous with
    everything received for that file before.

    ``data`` is a read-only ``memoryview`` over immutable ``bytes`` (zero-copy from the
    received frame); it stays valid while referenced. Use ``bytes(data)`` for a copy.
    """

    file: int
    offset: int
    data: memoryview

    def __post_init__(self) -> None:
        _non_negative(file=self.file, offset=self.offset)
        if not len(self.data):
            raise LocalProtocolError("data is empty", code="bad_argument")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileReceived:
    """Every byte of ``file`` has arrived (or was already durable at ``accept()``).

    The driver must write and fsync it, ``ack(file, size)``, verify the hash from disk,
    then call ``file_verified(file)`` or ``file_failed(file, reason)``.
    """

    file: int

    def __post_init__(self) -> None:
        _non_negative(file=self.file)


SenderEvent = Accepted | Acked | FileVerified | TransferDone | Rejected | Cancelled | PeerFailed
ReceiverEvent = OfferReceived | DataReceived | FileReceived | Cancelled | PeerFailed


# -- values --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkRequest:
    """Read ``length`` bytes of ``file`` at ``offset``, then pass them to ``send_chunk``."""

    file: int
    offset: int
    length: int

    def __post_init__(self) -> None:
        _non_negative(file=self.file, offset=self.offset, length=self.length)


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderStatistics:
    """Byte counters of a :class:`~daemon.protocol.transfer.TransferSender`.

    ``total``: sum of file sizes. ``resumed``: bytes the receiver already held at
    ``accept`` (sum of offsets). ``sent``: payload bytes framed in this session.
    ``acked``: bytes durable at the receiver, resumed ones included (progress =
    ``acked / total``). ``in_flight``: sent but not yet acked (never above the window).
    ``remaining``: bytes not yet sent. ``files_verified``: files final at the receiver.
    ``wire``: what the ``sent`` bytes took in their frames after compression, before framing
    and sealing overhead (equal to ``sent`` unless the session compresses).
    """

    total: int
    resumed: int
    sent: int
    acked: int
    in_flight: int
    remaining: int
    files_verified: int
    wire: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverStatistics:
    """Byte counters of a :class:`~daemon.protocol.transfer.TransferReceiver`.

    ``total``: sum of offered file sizes (0 before the offer). ``resumed``: sum of the
    accepted offsets. ``received``: payload bytes received in this session. ``acked``:
    durable bytes, resumed ones included. ``files_verified``: files reported final.
    ``wire``: what the ``received`` bytes took in their frames before decompression, framing
    and sealing overhead excluded (equal to ``received`` unless the session compresses).
    """

    total: int
    resumed: int
    received: int
    acked: int
    files_verified: int
    wire: int = 0
