"""The exception types the peer package lets out."""

from __future__ import annotations

__all__ = ["PeerError", "NoRoute"]


class PeerError(Exception):
    """A WebRTC connection could not be set up or broke; the message says why, for a person."""


class NoRoute(PeerError):
    """Both sides exchanged their SDP, but no ICE candidate pair connected: the networks between
    them let nothing through (a symmetric NAT or a firewall without a TURN relay to fall back on).
    Trying again the same way is unlikely to help."""
