"""Exceptions of the signaling client.

::

    SignalingError            an error reply or a client-side failure; .code, .message
    +-- SignalingConnectError the WebSocket could not be opened (refused, rejected, timed out)
    +-- SignalingClosed       the signaling connection is closed; the request cannot complete
    +-- JoinFailed            join_failed: no such code or share (the server never says which)
    +-- SessionClosed         the session ended: the other end left, we left, or the socket closed

Server error codes are :class:`~daemon.protocol.signaling.ErrorCode` values; unknown codes are
kept as plain strings.
"""

from __future__ import annotations

__all__ = [
    "SignalingError",
    "SignalingConnectError",
    "SignalingClosed",
    "JoinFailed",
    "SessionClosed",
]


class SignalingError(Exception):
    """Base class. ``code`` is the server's error code (or a client-side one), ``message`` text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SignalingConnectError(SignalingError):
    """Opening the signaling WebSocket failed (code ``connect_failed``)."""

    def __init__(self, message: str) -> None:
        super().__init__("connect_failed", message)


class SignalingClosed(SignalingError):
    """The signaling connection is closed (code ``closed``); ``close_code`` is the WebSocket
    close code when one is known."""

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__("closed", message)
        self.close_code = close_code


class JoinFailed(SignalingError):
    """The server refused the join (code ``join_failed``)."""


class SessionClosed(SignalingError):
    """The session is over (code ``session_closed``); ``message`` says how."""

    def __init__(self, message: str) -> None:
        super().__init__("session_closed", message)
