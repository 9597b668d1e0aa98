"""Transfer drivers: run the sans-I/O protocol machines over a message transport, against storage."""

from .errors import SealingMismatch as SealingMismatch
from .errors import TamperedData as TamperedData
from .errors import TransferFailed as TransferFailed
from .errors import TransferInterrupted as TransferInterrupted
from .receiving import ReceiveOutcome as ReceiveOutcome, run_receiver as run_receiver
from .sending import run_sender as run_sender
from .transport import MessageTransport as MessageTransport

__all__ = [
    "ReceiveOutcome", "run_receiver", "run_sender", "MessageTransport",
    "TransferFailed", "TransferInterrupted", "SealingMismatch", "TamperedData",
]
