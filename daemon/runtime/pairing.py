"""This install's device identity, pairing by code, and code-free transfers between paired devices.

- The identity is an Ed25519 key in ``<state_dir>/identity.key`` (its 32-byte seed, 0600).
- Pairing: one side offers (a pairing id hosted with a fresh code), the other joins with that code;
  the ``pair`` authentication mode proves the code (SPAKE2 bound to the DTLS fingerprints) and
  exchanges device keys, which both sides pin as approved.
- Every daemon hosts its **inbox address** (``inbox-<device id>``) on its own signaling server. A
  paired device pushes a share there: the ``device`` mode checks both pinned keys (signatures over
  the fingerprints), then the files flow into the inbox. A device that is not paired (or revoked)
  is refused before any byte moves, and an unknown one is recorded as pending so the owner can
  approve it; it sends again once approved.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from daemon.crypto import BadKeyFile, DeviceIdentity
from daemon.storage import write_secret_file

__all__ = ["IDENTITY_FILE", "ensure_identity", "inbox_address", "new_pairing_id"]

log = logging.getLogger("doorstep.pairing")

IDENTITY_FILE = "identity.key"


def ensure_identity(state_dir: Path) -> DeviceIdentity:
    """Load this install's device key, creating it (0600, atomically) at first start.

    Raises OSError when the file cannot be read or written, BadKeyFile when it is corrupt (never
    silently replaced: paired devices pinned the old key).
    """
    path = state_dir / IDENTITY_FILE
    if not path.exists():
        write_secret_file(path, DeviceIdentity.generate().seed)
    seed = path.read_bytes()
    try:
        return DeviceIdentity.from_seed(seed)
    except BadKeyFile:
        raise BadKeyFile(f"{path} is not a device key (32 bytes); restore it or remove it to start over "
                         "(paired devices will then have to pair again)") from None


def inbox_address(device_id: str) -> str:
    """The signaling address where a daemon accepts pushes from its paired devices."""
    return f"inbox-{device_id}"


def new_pairing_id() -> str:
    return "pair-" + secrets.token_urlsafe(16)
