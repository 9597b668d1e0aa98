"""This install's device identity, pairing by code, and code-free transfers between paired devices.

- The identity is an Ed25519 key in ``<state_dir>/identity.key`` (its 32-byte seed, 0600). A
  rotation replaces it with a fresh key signed by the old one; the chain of rotations lives in
  ``identity.rotations``, and the device id (from the first key) never changes.
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

import base64
import json
import logging
import secrets
from pathlib import Path

from daemon.crypto import BadKeyFile, BadSignature, DeviceIdentity, KeyRotation
from daemon.storage import write_secret_file

__all__ = ["IDENTITY_FILE", "ROTATIONS_FILE", "ensure_identity", "rotate_identity", "inbox_address", "new_pairing_id"]

log = logging.getLogger("doorstep.pairing")

IDENTITY_FILE = "identity.key"
ROTATIONS_FILE = "identity.rotations"
"""How the device's first key led to the current one (JSON; public, but kept 0600 beside the key)."""


def ensure_identity(state_dir: Path) -> DeviceIdentity:
    """Load this install's device key (and its rotation chain), creating it (0600, atomically) at
    first start.

    Raises OSError when a file cannot be read or written, BadKeyFile when one is corrupt (never
    silently replaced: paired devices pinned the old key).
    """
    path = state_dir / IDENTITY_FILE
    if not path.exists():
        write_secret_file(path, DeviceIdentity.generate().seed)
    seed = path.read_bytes()
    try:
        probe = DeviceIdentity.from_seed(seed)
    except BadKeyFile:
        raise BadKeyFile(f"{path} is not a device key (32 bytes); restore it or remove it to start over "
                         "(paired devices will then have to pair again)") from None
    chain = _read_rotations(state_dir / ROTATIONS_FILE)
    while chain and chain[-1].new != probe.public_key:  # a rotation cut short before the new key was stored
        chain.pop()
    try:
        return DeviceIdentity.from_seed(seed, chain)
    except BadSignature:
        raise BadKeyFile(f"{state_dir / ROTATIONS_FILE} does not lead to the key in {path}; restore both") from None


def rotate_identity(state_dir: Path, identity: DeviceIdentity) -> DeviceIdentity:
    """Replace this install's key with a fresh one signed by the current one (same device id).

    The chain is written first, then the key: a crash in between leaves the old key and a chain
    whose last link :func:`ensure_identity` drops. Raises OSError, or BadSignature past
    ``MAX_CHAIN`` rotations.
    """
    rotated = identity.rotated()
    links = [{"old": _b64(r.old), "new": _b64(r.new), "signature": _b64(r.signature)} for r in rotated.rotations]
    write_secret_file(state_dir / ROTATIONS_FILE, json.dumps(links, indent=1).encode())
    write_secret_file(state_dir / IDENTITY_FILE, rotated.seed)
    log.info("device key rotated (%d rotations so far); paired devices follow it when they next connect",
             len(rotated.rotations))
    return rotated


def _read_rotations(path: Path) -> list[KeyRotation]:
    if not path.exists():
        return []
    try:
        links = json.loads(path.read_text())
        return [KeyRotation(_unb64(link["old"]), _unb64(link["new"]), _unb64(link["signature"])) for link in links]
    except (ValueError, KeyError, TypeError, BadSignature):
        raise BadKeyFile(f"{path} is not a list of key rotations; restore it") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def inbox_address(device_id: str) -> str:
    """The signaling address where a daemon accepts pushes from its paired devices."""
    return f"inbox-{device_id}"


def new_pairing_id() -> str:
    return "pair-" + secrets.token_urlsafe(16)
