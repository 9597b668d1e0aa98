"""Sans-I/O protocols: the transfer protocol (frames, messages, sender/receiver machines) and the
signaling message layer (``daemon.protocol.signaling``). Standard library only.

This facade re-exports what transfer drivers use; the submodules hold the rest.
"""

from daemon.protocol.errors import LocalProtocolError as LocalProtocolError
from daemon.protocol.errors import ProtocolError as ProtocolError
from daemon.protocol.errors import RemoteProtocolError as RemoteProtocolError
from daemon.protocol.frames import data_payload_limit as data_payload_limit
from daemon.protocol.messages import FileEntry as FileEntry
from daemon.protocol.transfer import TransferReceiver as TransferReceiver
from daemon.protocol.transfer import TransferSender as TransferSender
from daemon.protocol.transfer import error_reply as error_reply
from daemon.protocol.transfer_events import Accepted as Accepted
from daemon.protocol.transfer_events import Acked as Acked
from daemon.protocol.transfer_events import Cancelled as Cancelled
from daemon.protocol.transfer_events import ChunkRequest as ChunkRequest
from daemon.protocol.transfer_events import DataReceived as DataReceived
from daemon.protocol.transfer_events import FileReceived as FileReceived
from daemon.protocol.transfer_events import FileVerified as FileVerified
from daemon.protocol.transfer_events import OfferReceived as OfferReceived
from daemon.protocol.transfer_events import PeerFailed as PeerFailed
from daemon.protocol.transfer_events import Rejected as Rejected
from daemon.protocol.transfer_events import TransferDone as TransferDone
from daemon.protocol.transfer_states import ReceiverState as ReceiverState
from daemon.protocol.transfer_states import SenderState as SenderState

__all__ = [
    "LocalProtocolError", "ProtocolError", "RemoteProtocolError", "data_payload_limit", "FileEntry",
    "TransferReceiver", "TransferSender", "error_reply", "Accepted", "Acked", "Cancelled", "ChunkRequest",
    "DataReceived", "FileReceived", "FileVerified", "OfferReceived", "PeerFailed", "Rejected", "TransferDone",
    "ReceiverState", "SenderState",
]
