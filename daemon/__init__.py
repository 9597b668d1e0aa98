"""doorstep: the daemon's public facade. Explicit re-exports only."""

from daemon.facade import ApplianceAPI as ApplianceAPI
from daemon.facade import ApplianceError as ApplianceError
from daemon.facade import ShareCreated as ShareCreated
from daemon.facade import Upload as Upload
from daemon.metrics import render_prometheus as render_prometheus
from daemon.state import Direction as Direction
from daemon.state import FileRecord as FileRecord
from daemon.state import TransferRecord as TransferRecord
from daemon.state import TransferState as TransferState

__all__ = [
    "ApplianceAPI", "ApplianceError", "ShareCreated", "Upload",
    "Direction", "FileRecord", "TransferRecord", "TransferState", "render_prometheus",
]
