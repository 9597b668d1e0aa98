"""The one exception type the peer package lets out."""

from __future__ import annotations

__all__ = ["PeerError"]


class PeerError(Exception):
    """A WebRTC connection could not be set up or broke; the message says why, for a person."""
