"""ICE policy as plain data: which host addresses to gather and which STUN/TURN servers to use.

Never imports aiortc; ``daemon.peer`` turns these values into aiortc objects.

Modules: ``config`` (the values below), ``stun`` (the embedded STUN responder's sans-I/O codec),
``rate_limit`` (per-source token buckets), ``turn_credentials`` (TURN REST credential minting).
"""

from .config import IceConfig as IceConfig, IceServer as IceServer, parse_addresses as parse_addresses

__all__ = ["IceConfig", "IceServer", "parse_addresses"]
