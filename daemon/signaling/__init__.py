"""Signaling: the WebSocket server that introduces peers by codes and share ids and relays their
SDP/ICE, its shared-state store, and the trio client. Protocol: ``docs/signaling.md``; message
layer: :mod:`daemon.protocol.signaling`."""

from daemon.signaling.client import (
    Hosted as Hosted,
    SignalingClient as SignalingClient,
    SignalSession as SignalSession,
    open_signaling as open_signaling,
)
from daemon.signaling.counters import LimitKind as LimitKind
from daemon.signaling.errors import (
    JoinFailed as JoinFailed,
    SessionClosed as SessionClosed,
    SignalingClosed as SignalingClosed,
    SignalingConnectError as SignalingConnectError,
    SignalingError as SignalingError,
)
from daemon.signaling.limits import Limits as Limits
from daemon.signaling.memory_store import MemorySessionStore as MemorySessionStore
from daemon.signaling.server import (
    SignalingServer as SignalingServer,
    SignalingStatistics as SignalingStatistics,
    serve_signaling as serve_signaling,
)
from daemon.signaling.store import (
    SessionStore as SessionStore,
    StoreStatistics as StoreStatistics,
)

__all__ = [
    "Hosted",
    "SignalingClient",
    "SignalSession",
    "open_signaling",
    "LimitKind",
    "JoinFailed",
    "SessionClosed",
    "SignalingClosed",
    "SignalingConnectError",
    "SignalingError",
    "Limits",
    "MemorySessionStore",
    "SignalingServer",
    "SignalingStatistics",
    "serve_signaling",
    "SessionStore",
    "StoreStatistics",
]
