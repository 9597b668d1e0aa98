"""The direct path: after authentication, move the transfer to a proven, sealed TCP connection.

Sans-I/O: :mod:`.messages` (the ``direct_offer``/``direct_select`` negotiation messages),
:mod:`.handshake` (proof of the session key on a fresh connection, stream keys), :mod:`.records`
(secretstream records with a maximum size). Drivers (trio): :mod:`.negotiate` (listen, dial, race,
agree) and :mod:`.transport` (``DirectTransport``, a ``MessageTransport``). :mod:`.addresses` says
which local addresses take part and which of the peer's candidates may be dialled.
"""

from .handshake import DirectKeys as DirectKeys
from .handshake import HandshakeFailed as HandshakeFailed
from .handshake import ProofHandshake as ProofHandshake
from .handshake import Side as Side
from .messages import Candidate as Candidate
from .messages import DirectOffer as DirectOffer
from .messages import DirectSelect as DirectSelect
from .negotiate import DIRECT_TIMEOUT as DIRECT_TIMEOUT
from .negotiate import DirectPath as DirectPath
from .negotiate import negotiate_direct as negotiate_direct
from .records import MAX_RECORD as MAX_RECORD
from .records import RecordError as RecordError
from .transport import DirectPathBroken as DirectPathBroken
from .transport import DirectTransport as DirectTransport

__all__ = [
    "DirectKeys", "HandshakeFailed", "ProofHandshake", "Side", "Candidate", "DirectOffer", "DirectSelect",
    "DIRECT_TIMEOUT", "DirectPath", "negotiate_direct", "MAX_RECORD", "RecordError", "DirectPathBroken",
    "DirectTransport",
]
