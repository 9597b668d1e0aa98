"""The only aiortc user: WebRTC data channels exposed to trio as message transports."""

from .channel import DataChannelTransport as DataChannelTransport
from .connection import CHANNEL_LABEL as CHANNEL_LABEL, Role as Role, SignalChannel as SignalChannel
from .connection import open_data_channel as open_data_channel
from .errors import NoRoute as NoRoute
from .errors import PeerError as PeerError

__all__ = ["DataChannelTransport", "CHANNEL_LABEL", "Role", "SignalChannel", "open_data_channel", "PeerError", "NoRoute"]
