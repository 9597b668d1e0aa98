"""One transfer attempt over one signaling session: WebRTC handshake, then the transfer driver.

Shared by the daemon and the standalone CLI, which differ only in where state and files live.
"""

from __future__ import annotations

from daemon.ice import IceConfig
from daemon.peer import Role, SignalChannel, open_data_channel
from daemon.protocol import FileEntry
from daemon.state import FileRecord, StateDB
from daemon.storage import Inbox, ShareDir
from daemon.transfer import ReceiveOutcome, run_receiver, run_sender
from daemon.transfer.receiving import ReceiveReport, receive_limit
from daemon.transfer.sending import SendReport

__all__ = ["send_over_session", "receive_over_session", "CONTROL_RECEIVE_LIMIT"]

# A sender receives only small control frames (acks): a few MiB of queue is plenty.
CONTROL_RECEIVE_LIMIT = 4 * 1024 * 1024


async def send_over_session(
    signal: SignalChannel,
    ice: IceConfig,
    *,
    share_id: str,
    files: tuple[FileRecord, ...],
    share_dir: ShareDir,
    report: SendReport,
) -> None:
    """Offer a data channel over ``signal`` and send the share's files over it."""
    entries = [FileEntry(path=f.path, size=f.size, sha256=f.sha256) for f in files]

    def open_source(index: int):
        return share_dir.open_source(files[index].path)

    async with open_data_channel(signal, Role.OFFERER, ice, receive_limit=CONTROL_RECEIVE_LIMIT) as channel:
        await run_sender(channel, share_id, entries, open_source, report)
        await channel.wait_flushed()


async def receive_over_session(
    signal: SignalChannel,
    ice: IceConfig,
    *,
    inbox: Inbox,
    journal: StateDB,
    transfer_id: str,
    expect_share: str | None,
    report: ReceiveReport,
) -> ReceiveOutcome:
    """Answer the sharer's data channel over ``signal`` and receive into ``inbox``."""
    async with open_data_channel(signal, Role.ANSWERER, ice, receive_limit=receive_limit(262144)) as channel:
        outcome = await run_receiver(
            channel, inbox=inbox, journal=journal, transfer_id=transfer_id, expect_share=expect_share, report=report
        )
        await channel.wait_flushed()
        return outcome

