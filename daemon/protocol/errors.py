"""Protocol errors, split by whose fault they are (the h11 convention).

``LocalProtocolError``: this side misused a state machine (a bug in our driver).
``RemoteProtocolError``: the peer sent something invalid (hostile or broken peer).
Both carry ``code``, a short machine-readable reason that is safe to send back to the peer.
"""

from __future__ import annotations

__all__ = ["ProtocolError", "LocalProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class; never raised itself."""

    def __init__(self, message: str, *, code: str = "protocol_error") -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message)
        self.code = code


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes or a message that violate the protocol."""
