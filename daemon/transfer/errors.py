"""Why a transfer attempt ended without success, from the driver's point of view."""

from __future__ import annotations

__all__ = ["TransferInterrupted", "TransferFailed", "SealingMismatch", "TamperedData"]


class TransferInterrupted(Exception):
    """The connection broke or the peer vanished; durable progress is kept and a retry may resume."""


class TransferFailed(Exception):
    """The transfer cannot succeed as it is (refused, cancelled, protocol violation); do not retry."""


class SealingMismatch(TransferFailed):
    """One side seals DATA frames (app-layer encryption is on) and the other does not.

    Refused by both sides at ``hello``, before any file byte moved; a retry with the same
    configuration would be refused again, and neither side falls back to plaintext.
    """


class TamperedData(TransferInterrupted):
    """A sealed DATA frame did not open: altered, replayed, reordered, cut short, or sealed with
    another key.

    Nothing from that frame (or after it) was written, and a file is placed under its final name
    only after its FINAL chunk opened, so the partial files hold authenticated bytes only: a retry
    resumes from the last durable offset in a new stream.
    """
