"""Transfer protocol v1 state machines (sans-I/O): ``TransferSender``, ``TransferReceiver``.

Both follow h11's shape. Bytes from the transport go in through ``receive_data``
(``b""`` = EOF); events come out of ``next_event`` (``None`` = need more data). Method
calls return the bytes to send, which the driver must write in call order. No I/O, clock
or randomness: the driver reads/writes files, fsyncs and hashes.

Lifecycle rules shared by both machines (see ``transfer_states`` for the tables):

* Every method, and every received frame, is checked against the transition table.
  A method not allowed in the current state raises ``LocalProtocolError(code="state")``;
  a received message not allowed raises ``RemoteProtocolError(code="unexpected_message")``.
* Any exception raised by a method, or by ``next_event`` while processing received bytes,
  moves the machine to ``ERROR`` (so do ``fail()``, ``file_failed()`` and a received
  ``error``). In ``ERROR`` every method raises ``LocalProtocolError(code="state")``,
  except ``next_event``, which returns the ``PeerFailed`` event if the peer's ``error``
  caused the state and ``None`` afterwards, and the read-only ``state``/``statistics()``.
  After a ``RemoteProtocolError`` the driver should send ``error_reply(exc)`` and close.
* ``DONE``, ``REJECTED`` and ``CANCELLED`` are terminal and quiet: ``receive_data``
  discards further bytes (they can only be frames that crossed our final message, such
  as DATA in flight when we cancelled), ``next_event`` returns ``None`` after the final
  event, and EOF is expected.
* EOF (``receive_data(b"")``) in a live state makes ``next_event`` raise
  ``RemoteProtocolError(code="unexpected_eof")`` once the complete frames before it
  have been processed.

Sealed sessions (app-layer encryption of DATA frames): pass the same kind of ``sealing``
object to both machines (see ``transfer_sealing`` for the agreement and stream rules).

Compressed sessions: pass a ``compression`` codec to both machines (see
``transfer_compression`` for the agreement, the content choice and the limits). Offsets, the
window, acks, ``DataReceived`` and the statistics' byte counters count file bytes, compressed
or not (``statistics().wire`` tells what the chunks took on the wire).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar, cast

from daemon.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from daemon.protocol.frames import (
    MAX_DATA_PAYLOAD,
    MAX_SEALED_PAYLOAD,
    RAW_LENGTH_SIZE,
    SEAL_HEADER_SIZE,
    SEAL_TAG_SIZE,
    CompressedDataFrame,
    ControlFrame,
    DataFrame,
    FrameDecoder,
    SealedDataFrame,
    encode_compressed_data_frame,
    encode_data_frame,
    encode_sealed_data_frame,
)
from daemon.protocol.messages import (
    Accept,
    Ack,
    Cancel,
    Done,
    Error,
    FileEntry,
    Hello,
    Message,
    Offer,
    Reject,
    Verified,
    clip_text,
    decode_message,
    encode_message,
    is_error_code,
)
from daemon.protocol.transfer_compression import (
    BAD_COMPRESSION,
    COMPRESSION_MISMATCH,
    GIVE_UP_AFTER,
    Compression,
    is_codec_name,
)
from daemon.protocol.transfer_events import (
    Accepted,
    Acked,
    Cancelled,
    ChunkRequest,
    DataReceived,
    FileReceived,
    FileVerified,
    OfferReceived,
    PeerFailed,
    ReceiverEvent,
    ReceiverStatistics,
    Rejected,
    SenderEvent,
    SenderStatistics,
    TransferDone,
)
from daemon.protocol.transfer_sealing import (
    BAD_SEAL,
    SEALING_MISMATCH,
    Sealing,
    StreamOpener,
    StreamSealer,
)
from daemon.protocol.transfer_states import (
    RECEIVER_TERMINAL,
    RECEIVER_TRANSITIONS,
    SENDER_TERMINAL,
    SENDER_TRANSITIONS,
    ReceiverState,
    SenderState,
    Trigger,
)

__all__ = ["TransferSender", "TransferReceiver", "error_reply", "HASH_MISMATCH"]

HASH_MISMATCH = "hash_mismatch"
"""``error.code`` sent by :meth:`TransferReceiver.file_failed`."""

_RECV_TRIGGERS: Mapping[type[Message], Trigger] = {
    Hello: Trigger.RECV_HELLO,
    Offer: Trigger.RECV_OFFER,
    Accept: Trigger.RECV_ACCEPT,
    Reject: Trigger.RECV_REJECT,
    Ack: Trigger.RECV_ACK,
    Verified: Trigger.RECV_VERIFIED,
    Done: Trigger.RECV_DONE,
    Cancel: Trigger.RECV_CANCEL,
    Error: Trigger.RECV_ERROR,
}

_P = ParamSpec("_P")
_R = TypeVar("_R")
_M = TypeVar("_M", bound="_Machine")


def error_reply(exc: ProtocolError) -> bytes:
    """The ``error`` frame telling the peer why we gave up (send it, then close).

    Usable in any state, typically after ``next_event`` raised ``RemoteProtocolError``.
    """
    code = exc.code if is_error_code(exc.code) else "protocol_error"
    return encode_message(Error(code=code, message=clip_text(str(exc))))


def _guarded(method: Callable[Concatenate[_M, _P], _R]) -> Callable[Concatenate[_M, _P], _R]:
    """Refuse calls in ``ERROR``; move to ``ERROR`` if ``method`` raises anything."""

    @functools.wraps(method)
    def wrapper(self: _M, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self._state is self._ERROR:
            raise LocalProtocolError(f"{method.__name__}() called in state ERROR", code="state")
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self._state = self._ERROR
            self._events.clear()
            raise

    return wrapper


def _text_argument(name: str, value: object) -> str:
    if type(value) is not str:
        raise LocalProtocolError(f"{name} must be a str", code="bad_argument")
    return clip_text(value)


def _remote(code: str, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, code=code)


def _local(message: str, code: str = "bad_argument") -> LocalProtocolError:
    return LocalProtocolError(message, code=code)


class _Machine:
    """Shared plumbing: state + table, frame decoding, event queue, cancel/fail."""

    _TABLE: ClassVar[Mapping[Any, Mapping[Trigger, Any]]]
    _TERMINAL: ClassVar[frozenset[Any]]
    _INITIAL: ClassVar[Enum]
    _ERROR: ClassVar[Enum]

    def __init__(self, sealing: Sealing | None, compression: Compression | None) -> None:
        self._state: Any = self._INITIAL
        self._decoder = FrameDecoder()
        self._events: deque[Any] = deque()
        self._sealing = sealing
        if compression is not None and not is_codec_name(compression.name):
            raise _local(f"invalid codec name {compression.name!r}")
        # a sealed session does not compress (transfer_compression): the codec is not even offered
        self._compression = compression if sealing is None else None
        self._compressing = False
        self._wire = 0

    @property
    def sealed(self) -> bool:
        """This machine seals (sender) or requires sealed (receiver) DATA frames."""
        return self._sealing is not None

    @property
    def compressing(self) -> bool:
        """Both ``hello`` messages named this machine's codec: the sender may send, the receiver
        accepts, COMPRESSED_DATA frames. ``False`` before the peer's ``hello``."""
        return self._compressing

    def _target(self, trigger: Trigger) -> Any:
        """The state ``trigger`` leads to; raises if the table does not allow it."""
        target = self._TABLE[self._state].get(trigger)
        if target is not None:
            return target
        where = f"{trigger.value} is not allowed in state {self._state.name}"
        if trigger.is_remote:
            raise _remote("unexpected_message", where)
        raise _local(where, code="state")

    def _finish(self, target: Enum) -> None:
        """Local transition: enter ``target``; a terminal one drops pending events."""
        self._state = target
        if target in self._TERMINAL:
            self._events.clear()

    # -- bytes in ------------------------------------------------------------------

    @_guarded
    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the transport; ``b""`` means EOF (see module docstring).

        Raises ``LocalProtocolError(code="state")`` before ``start()``.
        """
        if self._state is self._INITIAL:
            raise _local("call start() before receive_data()", code="state")
        if self._state not in self._TERMINAL:
            self._decoder.receive_data(data)

    def next_event(self) -> Any:
        """The next event, or ``None`` if more data is needed or the machine finished
        (any terminal state, ``ERROR`` included: the loop
        ``while (event := m.next_event()) is not None`` always ends).

        Raises ``RemoteProtocolError`` for invalid received bytes (the machine is then
        in ``ERROR``).
        """
        if self._events:
            return self._events.popleft()
        if self._state is self._ERROR:
            return None
        return self._process()

    @_guarded
    def _process(self) -> Any:
        while not self._events:
            if self._state in self._TERMINAL:
                return None
            frame = self._decoder.next_frame()
            if frame is None:
                if self._decoder.closed:
                    raise _remote("unexpected_eof", f"transport closed in state {self._state.name}")
                return None
            if isinstance(frame, ControlFrame):
                message = decode_message(frame.body)
                target = self._target(_RECV_TRIGGERS[type(message)])
                getattr(self, f"_on_{message.TYPE}")(message)
            else:
                target = self._target(Trigger.RECV_DATA)
                if isinstance(frame, DataFrame):
                    self._on_data(frame)
                elif isinstance(frame, SealedDataFrame):
                    self._on_sealed_data(frame)
                else:
                    self._on_compressed_data(frame)
            self._state = target
        return self._events.popleft()

    def _on_data(self, frame: DataFrame) -> None:
        raise AssertionError("no table allows DATA here")  # pragma: no cover

    def _on_sealed_data(self, frame: SealedDataFrame) -> None:
        raise AssertionError("no table allows DATA here")  # pragma: no cover

    def _on_compressed_data(self, frame: CompressedDataFrame) -> None:
        raise AssertionError("no table allows DATA here")  # pragma: no cover

    def _hello(self) -> bytes:
        codecs = () if self._compression is None else (self._compression.name,)
        return encode_message(Hello(sealed=self.sealed, compress=codecs))

    def _on_hello(self, message: Hello) -> None:
        if message.sealed != self.sealed:
            theirs = "seals" if message.sealed else "does not seal"
            ours = "we do" if self.sealed else "we do not"
            raise _remote(SEALING_MISMATCH, f"the peer {theirs} DATA frames and {ours}")
        self._compressing = (
            self._compression is not None and self._compression.name in message.compress
        )

    def _on_cancel(self, message: Cancel) -> None:
        self._events.append(Cancelled(reason=message.reason))

    def _on_error(self, message: Error) -> None:
        self._events.append(PeerFailed(code=message.code, message=message.message))

    # -- calls out -----------------------------------------------------------------

    @_guarded
    def cancel(self, reason: str) -> bytes:
        """Stop the transfer; returns the ``cancel`` frame. The machine is ``CANCELLED``."""
        target = self._target(Trigger.CANCEL)
        frame = encode_message(Cancel(reason=_text_argument("reason", reason)))
        self._finish(target)
        return frame

    @_guarded
    def fail(self, code: str, message: str) -> bytes:
        """Report a fatal local error (disk full, file vanished...); returns the ``error``
        frame. ``code``: 1..64 of ``[a-z0-9_.-]``. The machine is ``ERROR``."""
        target = self._target(Trigger.FAIL)
        if not is_error_code(code):
            raise _local(f"invalid error code {code!r}")
        frame = encode_message(Error(code=code, message=_text_argument("message", message)))
        self._finish(target)
        return frame


class TransferSender(_Machine):
    """Sending side of one transfer.

    ``TransferSender(transfer_id, files)`` validates the manifest (``bad_message``) and
    that its ``offer`` fits one CONTROL frame (``offer_too_large``), raising
    ``LocalProtocolError``.

    Driver loop: ``start()``; feed received bytes and drain ``next_event()``; after
    ``Accepted``, repeatedly ``next_chunk(max_payload)`` → read those bytes →
    ``send_chunk(...)`` until it returns ``None`` (window full or all sent), and try
    again after each ``Acked``. Finished on ``TransferDone`` (``DONE``), ``Rejected``,
    ``Cancelled`` or ``PeerFailed``.

    ``sealing``: seal the file bytes (SEALED_DATA frames; the receiver must be sealed too).
    ``next_chunk`` then takes at most :data:`MAX_SEALED_PAYLOAD`, and asks for one empty
    chunk (``length == 0``) for each empty file: pass ``b""`` to ``send_chunk``, which seals
    the empty FINAL chunk that tells the receiver the file is complete.

    ``compression``: a codec offered in ``hello``; when the receiver names it too,
    ``send_chunk`` returns a COMPRESSED_DATA frame for chunks that shrink (never larger than the
    DATA frame it replaces, so the same ``max_payload`` fits the same messages) and stops trying
    for the rest of a file after :data:`GIVE_UP_AFTER` chunks in a row did not. Ignored when
    ``sealing`` is given.
    """

    _TABLE = SENDER_TRANSITIONS
    _TERMINAL = SENDER_TERMINAL
    _INITIAL = SenderState.IDLE
    _ERROR = SenderState.ERROR

    def __init__(
        self,
        transfer_id: str,
        files: Sequence[FileEntry],
        *,
        sealing: Sealing | None = None,
        compression: Compression | None = None,
    ) -> None:
        super().__init__(sealing, compression)
        offer = Offer(transfer_id=transfer_id, files=tuple(files))
        try:
            self._offer_frame = encode_message(offer)
        except LocalProtocolError as exc:
            raise _local(f"offer does not fit a control frame: {exc}", "offer_too_large") from exc
        self._transfer_id = offer.transfer_id
        self._files = offer.files
        count = len(self._files)
        self._sent = [0] * count
        self._acked = [0] * count
        self._verified = [False] * count
        self._cursor = 0
        self._window = 0
        self._in_flight = 0
        self._pending: ChunkRequest | None = None
        self._max_payload = MAX_DATA_PAYLOAD if sealing is None else MAX_SEALED_PAYLOAD
        self._markers = [False] * count  # sealed empty files still owing their FINAL chunk
        self._sealer: StreamSealer | None = None
        self._sealer_file = -1
        self._misses = [0] * count  # chunks in a row that did not shrink, per file
        self._total = sum(entry.size for entry in self._files)
        self._resumed = 0
        self._session_sent = 0
        self._files_verified = 0

    @property
    def state(self) -> SenderState:
        """Current :class:`SenderState`."""
        return cast(SenderState, self._state)

    @property
    def transfer_id(self) -> str:
        """The offer's transfer id."""
        return self._transfer_id

    @property
    def files(self) -> tuple[FileEntry, ...]:
        """The offered files, by index."""
        return self._files

    def next_event(self) -> SenderEvent | None:
        """See :meth:`_Machine.next_event`."""
        return cast("SenderEvent | None", super().next_event())

    def statistics(self) -> SenderStatistics:
        """Byte counters (see :class:`SenderStatistics`); valid in every state."""
        return SenderStatistics(
            total=self._total,
            resumed=self._resumed,
            sent=self._session_sent,
            acked=self._resumed + self._session_sent - self._in_flight,
            in_flight=self._in_flight,
            remaining=self._total - self._resumed - self._session_sent,
            files_verified=self._files_verified,
            wire=self._wire,
        )

    @_guarded
    def start(self) -> bytes:
        """The ``hello`` and ``offer`` frames. Allowed once, in ``IDLE``."""
        target = self._target(Trigger.START)
        self._state = target
        return self._hello() + self._offer_frame

    @_guarded
    def next_chunk(self, max_payload: int) -> ChunkRequest | None:
        """What to read next: at most ``max_payload`` (1..1 MiB, or 1..``MAX_SEALED_PAYLOAD``
        when sealed) bytes of the first file (in index order) that still has unsent bytes,
        limited by the window. When sealed, an empty file gets a request of length 0.

        Returns ``None`` unless ``SENDING``, when the window is full, or when every byte
        has been sent. Calling it again replaces the previous request.
        """
        if type(max_payload) is not int or not 1 <= max_payload <= self._max_payload:
            raise _local(f"max_payload must be 1..{self._max_payload}")
        self._pending = None
        if self._state is not SenderState.SENDING:
            return None
        while self._cursor < len(self._files) and self._file_sent(self._cursor):
            self._cursor += 1
        room = self._window - self._in_flight
        if self._cursor == len(self._files) or room <= 0:
            return None
        file = self._cursor
        offset = self._sent[file]
        length = min(max_payload, room, self._files[file].size - offset)
        self._pending = ChunkRequest(file=file, offset=offset, length=length)
        return self._pending

    @_guarded
    def send_chunk(self, file: int, offset: int, data: bytes | bytearray | memoryview) -> bytes:
        """The DATA frame for bytes just read for the last :meth:`next_chunk` request.

        ``file`` and ``offset`` must equal the request's; ``len(data)`` must be
        1..``request.length`` (a short read is allowed), or 0 for a request of length 0.
        Otherwise ``LocalProtocolError(code="bad_chunk")``. When sealed, returns a
        SEALED_DATA frame (the stream header in front of a file's first chunk); when
        compressing, a COMPRESSED_DATA frame if the chunk shrinks (see the class docstring).
        """
        target = self._target(Trigger.SEND_CHUNK)
        request, self._pending = self._pending, None
        length = memoryview(data).nbytes
        if (
            request is None
            or (file, offset) != (request.file, request.offset)
            or not min(1, request.length) <= length <= request.length
        ):
            raise _local(f"chunk ({file}, {offset}, {length}) != {request}", "bad_chunk")
        if self._sealing is not None:
            frame = self._seal(file, offset, data, length)
        elif self._compressing and self._misses[file] < GIVE_UP_AFTER:
            frame = self._compress(file, offset, data, length)
        else:
            frame = encode_data_frame(file, offset, data)
            self._wire += length
        self._sent[file] += length
        self._in_flight += length
        self._session_sent += length
        self._state = target
        return frame

    def _compress(
        self, file: int, offset: int, data: bytes | bytearray | memoryview, length: int
    ) -> bytes:
        """A COMPRESSED_DATA frame if the chunk shrinks below its DATA frame, else DATA."""
        assert self._compression is not None
        packed = self._compression.compress(data)
        if packed is None or not 1 <= len(packed) + RAW_LENGTH_SIZE < length:
            self._misses[file] += 1
            self._wire += length
            return encode_data_frame(file, offset, data)
        self._misses[file] = 0
        self._wire += len(packed)
        return encode_compressed_data_frame(file, offset, length, packed)

    def _seal(
        self, file: int, offset: int, data: bytes | bytearray | memoryview, length: int
    ) -> bytes:
        """The SEALED_DATA frame for a chunk; a file's first chunk starts its stream."""
        assert self._sealing is not None
        header = b""
        if self._sealer is None or self._sealer_file != file:
            self._sealer = self._sealing.sealer(self._transfer_id, file, offset)
            self._sealer_file = file
            header = self._sealer.header
        final = offset + length == self._files[file].size
        sealed = self._sealer.seal(data, offset=offset, final=final)
        self._wire += length
        if final:
            self._sealer = None
            self._markers[file] = False
        return encode_sealed_data_frame(file, offset, sealed, header=header)

    def _file_sent(self, file: int) -> bool:
        return self._sent[file] == self._files[file].size and not self._markers[file]

    # -- received messages (called with the table already checked) -------------------

    def _on_accept(self, message: Accept) -> None:
        if len(message.offsets) != len(self._files):
            raise _remote(
                "bad_accept",
                f"accept has {len(message.offsets)} offsets for {len(self._files)} files",
            )
        for index, (offset, entry) in enumerate(zip(message.offsets, self._files, strict=True)):
            if offset > entry.size:
                raise _remote("bad_accept", f"offset {offset} > size {entry.size} of file {index}")
        self._sent = list(message.offsets)
        self._acked = list(message.offsets)
        self._window = message.window
        self._resumed = sum(message.offsets)
        if self.sealed:
            self._markers = [entry.size == 0 for entry in self._files]
        self._events.append(Accepted(offsets=message.offsets, window=message.window))

    def _on_reject(self, message: Reject) -> None:
        self._events.append(Rejected(reason=message.reason))

    def _on_ack(self, message: Ack) -> None:
        file, offset = message.file, message.offset
        if file >= len(self._files):
            raise _remote("bad_ack", f"ack for file {file} of {len(self._files)}")
        if not self._acked[file] < offset <= self._sent[file]:
            raise _remote(
                "bad_ack",
                f"ack {offset} for file {file}: acked {self._acked[file]}, sent {self._sent[file]}",
            )
        self._in_flight -= offset - self._acked[file]
        self._acked[file] = offset
        self._events.append(Acked(file=file, offset=offset))

    def _on_verified(self, message: Verified) -> None:
        file = message.file
        if file >= len(self._files):
            raise _remote("bad_verified", f"verified for file {file} of {len(self._files)}")
        if self._verified[file] or self._acked[file] != self._files[file].size:
            raise _remote(
                "bad_verified",
                f"verified for file {file}: already verified or not fully acked",
            )
        self._verified[file] = True
        self._files_verified += 1
        self._events.append(FileVerified(file=file))

    def _on_done(self, message: Done) -> None:
        if self._files_verified != len(self._files):
            raise _remote(
                "bad_done", f"done with {self._files_verified}/{len(self._files)} verified"
            )
        self._events.append(TransferDone())


class TransferReceiver(_Machine):
    """Receiving side of one transfer.

    Driver loop: ``start()``; feed received bytes and drain ``next_event()``. On
    ``OfferReceived`` answer ``accept(offsets, window)`` (durable offsets from a
    previous attempt, or zeros) or ``reject(reason)``. On ``DataReceived`` write the
    bytes; after fsync send ``ack(file, durable_offset)`` (this is also the sender's
    flow-control credit: without acks the sender stops after ``window`` bytes). On
    ``FileReceived`` fsync, ack the full size, verify the hash from disk, then send
    ``file_verified(file)`` or ``file_failed(file, reason)``. ``DONE`` after the last
    ``file_verified``.

    ``sealing``: require SEALED_DATA frames and open them (the sender must be sealed too).
    ``DataReceived`` then carries opened plaintext, and an empty file is complete (its
    ``FileReceived`` is emitted) only when its empty FINAL chunk has opened, not at
    ``accept()``. A frame that does not open raises ``RemoteProtocolError(code="bad_seal")``.

    ``compression``: a codec offered in ``hello``; when the sender names it too, COMPRESSED_DATA
    frames are accepted beside DATA (otherwise they are ``compression_mismatch``). Each is
    checked against the file, offset and window with its ``raw_length`` before it is
    decompressed; output of another length is ``bad_compression``. ``DataReceived`` carries the
    decompressed bytes. Ignored when ``sealing`` is given.
    """

    _TABLE = RECEIVER_TRANSITIONS
    _TERMINAL = RECEIVER_TERMINAL
    _INITIAL = ReceiverState.IDLE
    _ERROR = ReceiverState.ERROR

    def __init__(
        self, *, sealing: Sealing | None = None, compression: Compression | None = None
    ) -> None:
        super().__init__(sealing, compression)
        self._transfer_id: str | None = None
        self._files: tuple[FileEntry, ...] = ()
        self._received: list[int] = []
        self._acked: list[int] = []
        self._verified: list[bool] = []
        self._markers: list[bool] = []  # sealed empty files still owed their FINAL chunk
        self._opener: StreamOpener | None = None
        self._opener_file = -1
        self._cursor = 0
        self._window = 0
        self._total = 0
        self._unacked = 0
        self._resumed = 0
        self._session_received = 0
        self._files_verified = 0

    @property
    def state(self) -> ReceiverState:
        """Current :class:`ReceiverState`."""
        return cast(ReceiverState, self._state)

    @property
    def transfer_id(self) -> str | None:
        """The offer's transfer id (``None`` before the offer)."""
        return self._transfer_id

    @property
    def files(self) -> tuple[FileEntry, ...]:
        """The offered files (empty before the offer)."""
        return self._files

    def next_event(self) -> ReceiverEvent | None:
        """See :meth:`_Machine.next_event`."""
        return cast("ReceiverEvent | None", super().next_event())

    def statistics(self) -> ReceiverStatistics:
        """Byte counters (see :class:`ReceiverStatistics`); valid in every state."""
        return ReceiverStatistics(
            total=self._total,
            resumed=self._resumed,
            received=self._session_received,
            acked=self._resumed + self._session_received - self._unacked,
            files_verified=self._files_verified,
            wire=self._wire,
        )

    @_guarded
    def start(self) -> bytes:
        """The ``hello`` frame. Allowed once, in ``IDLE``."""
        self._state = self._target(Trigger.START)
        return self._hello()

    @_guarded
    def accept(self, offsets: Sequence[int], window: int) -> bytes:
        """Accept the offer: ``offsets[i]`` (0..size) bytes of file ``i`` are already
        durable here and will not be sent; ``window`` (>= 64 KiB) bounds the bytes in
        flight. Returns the ``accept`` frame.

        Queues ``FileReceived`` for every file with ``offset == size`` (zero-size files
        included, unless sealed): drain ``next_event`` and verify those too.
        """
        target = self._target(Trigger.ACCEPT)
        message = Accept(offsets=tuple(offsets), window=window)
        if len(message.offsets) != len(self._files):
            raise _local(f"{len(message.offsets)} offsets for {len(self._files)} files")
        for index, (offset, entry) in enumerate(zip(message.offsets, self._files, strict=True)):
            if offset > entry.size:
                raise _local(f"offset {offset} > size {entry.size} of file {index}")
        self._received = list(message.offsets)
        self._acked = list(message.offsets)
        self._verified = [False] * len(self._files)
        self._markers = [self.sealed and entry.size == 0 for entry in self._files]
        self._window = message.window
        self._resumed = sum(message.offsets)
        self._state = target
        for index in range(len(self._files)):
            if self._complete(index):
                self._events.append(FileReceived(file=index))
        self._advance_cursor()
        return encode_message(message)

    @_guarded
    def reject(self, reason: str) -> bytes:
        """Decline the offer; returns the ``reject`` frame. The machine is ``REJECTED``."""
        target = self._target(Trigger.REJECT)
        frame = encode_message(Reject(reason=_text_argument("reason", reason)))
        self._finish(target)
        return frame

    @_guarded
    def ack(self, file: int, offset: int) -> bytes:
        """Tell the sender bytes ``[0, offset)`` of ``file`` are durable (call after
        fsync). ``offset`` must grow strictly per file and not exceed what was received.
        Returns the ``ack`` frame."""
        target = self._target(Trigger.ACK)
        self._check_file(file)
        if type(offset) is not int or not self._acked[file] < offset <= self._received[file]:
            raise _local(
                f"ack {offset!r} for file {file}: acked {self._acked[file]}, "
                f"received {self._received[file]}"
            )
        self._unacked -= offset - self._acked[file]
        self._acked[file] = offset
        self._state = target
        return encode_message(Ack(file=file, offset=offset))

    @_guarded
    def file_verified(self, file: int) -> bytes:
        """Report that ``file`` matched its hash (it must be complete, fully acked and not
        yet reported). Returns the ``verified`` frame, followed by ``done`` for the last
        file, when the machine becomes ``DONE``."""
        self._target(Trigger.FILE_VERIFIED)  # state check before looking at counters
        self._check_complete(file)
        if self._acked[file] != self._files[file].size:
            raise _local(f"file {file} must be acked in full before file_verified()")
        last = self._files_verified + 1 == len(self._files)
        target = self._target(Trigger.FILE_VERIFIED_LAST if last else Trigger.FILE_VERIFIED)
        self._verified[file] = True
        self._files_verified += 1
        self._state = target
        frame = encode_message(Verified(file=file))
        return frame + encode_message(Done()) if last else frame

    @_guarded
    def file_failed(self, file: int, reason: str) -> bytes:
        """Report that complete ``file`` failed verification: returns an ``error`` frame
        (code ``hash_mismatch``); the machine is ``ERROR``. The driver should discard the
        file's bytes before a later attempt resumes from durable offsets."""
        target = self._target(Trigger.FILE_FAILED)
        self._check_complete(file)
        text = clip_text(f"file {file}: {_text_argument('reason', reason)}")
        frame = encode_message(Error(code=HASH_MISMATCH, message=text))
        self._finish(target)
        return frame

    def _check_file(self, file: int) -> None:
        if type(file) is not int or not 0 <= file < len(self._files):
            raise _local(f"no file {file!r}")

    def _complete(self, file: int) -> bool:
        return self._received[file] == self._files[file].size and not self._markers[file]

    def _check_complete(self, file: int) -> None:
        self._check_file(file)
        if not self._complete(file) or self._verified[file]:
            raise _local(f"file {file} is incomplete or already verified")

    def _advance_cursor(self) -> None:
        while self._cursor < len(self._files) and self._complete(self._cursor):
            self._cursor += 1

    # -- received frames (called with the table already checked) ---------------------

    def _on_offer(self, message: Offer) -> None:
        self._transfer_id = message.transfer_id
        self._files = message.files
        self._total = sum(entry.size for entry in message.files)
        self._events.append(OfferReceived(transfer_id=message.transfer_id, files=message.files))

    def _on_data(self, frame: DataFrame) -> None:
        if self.sealed:
            raise _remote(SEALING_MISMATCH, "plaintext DATA in a sealed session")
        file, offset, size = frame.file, frame.offset, len(frame.payload)
        self._check_position(file, offset, size)
        self._wire += size
        self._deliver(file, offset, frame.payload)

    def _on_compressed_data(self, frame: CompressedDataFrame) -> None:
        if self.sealed:
            raise _remote(SEALING_MISMATCH, "COMPRESSED_DATA (not sealed) in a sealed session")
        if not self._compressing:
            raise _remote(COMPRESSION_MISMATCH, "COMPRESSED_DATA, but no codec was agreed in hello")
        assert self._compression is not None
        file, offset, size = frame.file, frame.offset, frame.raw_length
        self._check_position(file, offset, size)  # before any byte is decompressed
        where = f"file {file}: the chunk at offset {offset}"
        try:
            plain = self._compression.decompress(frame.compressed, size)
        except ValueError as exc:
            raise _remote(BAD_COMPRESSION, f"{where} does not decompress: {exc}") from exc
        if len(plain) != size:
            raise _remote(BAD_COMPRESSION, f"{where} is not {size} bytes")
        self._wire += len(frame.compressed)
        self._deliver(file, offset, memoryview(plain if type(plain) is bytes else bytes(plain)))

    def _on_sealed_data(self, frame: SealedDataFrame) -> None:
        if self._sealing is None:
            raise _remote(SEALING_MISMATCH, "SEALED_DATA in a session that is not sealed")
        file, offset, body = frame.file, frame.offset, frame.sealed
        first = self._opener is None or self._opener_file != file
        size = len(body) - SEAL_TAG_SIZE - (SEAL_HEADER_SIZE if first else 0)
        if size < 0:
            raise _remote(BAD_SEAL, f"file {file}: the stream's first frame lacks its header")
        self._check_position(file, offset, size)
        end = offset + size
        final = end == self._files[file].size
        if size == 0 and not final:
            raise _remote(BAD_SEAL, f"file {file}: an empty chunk that does not end the file")
        try:
            if first:
                header = bytes(body[:SEAL_HEADER_SIZE])
                body = body[SEAL_HEADER_SIZE:]
                assert self._transfer_id is not None
                self._opener = self._sealing.opener(self._transfer_id, file, offset, header)
                self._opener_file = file
            assert self._opener is not None
            plain = self._opener.open(body, offset=offset, final=final)
        except ValueError as exc:
            self._opener = None
            raise _remote(
                BAD_SEAL, f"file {file}: the chunk at offset {offset} does not open: {exc}"
            ) from exc
        if len(plain) != size:
            raise _local(f"the opener returned {len(plain)} bytes for {size}", "bad_argument")
        self._wire += size
        if final:
            self._opener = None
            self._markers[file] = False
        self._deliver(file, offset, memoryview(plain))

    def _check_position(self, file: int, offset: int, size: int) -> None:
        """Raise unless ``size`` bytes at ``offset`` are the next ones of the current file
        and fit the window."""
        if file != self._cursor or file >= len(self._files):
            expected = f"file {self._cursor}" if self._cursor < len(self._files) else "none"
            raise _remote("bad_file", f"DATA for file {file}, expected {expected}")
        if offset != self._received[file]:
            raise _remote(
                "bad_offset",
                f"DATA at offset {offset} of file {file}, expected {self._received[file]}",
            )
        end = offset + size
        if end > self._files[file].size:
            raise _remote("bad_offset", f"DATA ends at {end}, beyond the size of file {file}")
        if self._unacked + size > self._window:
            raise _remote("window", f"{self._unacked + size} unacked bytes exceed the window")

    def _deliver(self, file: int, offset: int, data: memoryview) -> None:
        """Account for validated (and, when sealed, opened) bytes and emit their events."""
        size = len(data)
        end = offset + size
        self._received[file] = end
        self._unacked += size
        self._session_received += size
        if size:
            self._events.append(DataReceived(file=file, offset=offset, data=data))
        if self._complete(file):
            self._events.append(FileReceived(file=file))
            self._advance_cursor()
