"""ICE policy as plain data: which host addresses to gather and which STUN/TURN servers to use.

Never imports aiortc; ``daemon.peer`` turns these values into aiortc objects.
"""

from .config import IceConfig as IceConfig, IceServer as IceServer, parse_addresses as parse_addresses

__all__ = ["IceConfig", "IceServer", "parse_addresses"]
