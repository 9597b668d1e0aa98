"""Why a transfer attempt ended without success, from the driver's point of view."""

from __future__ import annotations

__all__ = ["TransferInterrupted", "TransferFailed"]


class TransferInterrupted(Exception):
    """The connection broke or the peer vanished; durable progress is kept and a retry may resume."""


class TransferFailed(Exception):
    """The transfer cannot succeed as it is (refused, cancelled, protocol violation); do not retry."""
