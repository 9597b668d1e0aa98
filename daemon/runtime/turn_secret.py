"""The TURN shared secret (coturn's ``static-auth-secret``): ``<state_dir>/turn-secret``, 0600.

The file holds 32 random bytes as 64 hex digits and a newline. The secret *is that text*,
stripped (its ASCII bytes), exactly as coturn's config line carries it: the daemon mints
credentials with those bytes (:func:`daemon.ice.turn_credentials.mint`) and the coturn supervisor
writes them into coturn's config. An external TURN server's secret file (``turn.secret_file``) is
read the same way. Never log it.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from daemon.storage import write_secret_file

__all__ = ["TURN_SECRET_FILE", "ensure_turn_secret", "read_turn_secret"]

log = logging.getLogger("doorstep.turn")

TURN_SECRET_FILE = "turn-secret"


def ensure_turn_secret(state_dir: Path) -> bytes:
    """Return the managed TURN server's secret, creating the file (0600, atomically) if missing.

    Raises OSError if the state dir cannot be written or read, ValueError if the file is empty.
    """
    path = state_dir / TURN_SECRET_FILE
    if not path.exists():
        write_secret_file(path, (secrets.token_hex(32) + "\n").encode("ascii"))
    return read_turn_secret(path)


def read_turn_secret(path: Path) -> bytes:
    """The secret in ``path`` (its text, stripped, as bytes).

    Warns (once per call, without the secret) when the file is readable by group or others.
    Raises OSError if it cannot be read, ValueError if it is empty.
    """
    data = path.read_bytes().strip()
    if not data:
        raise ValueError(f"TURN secret file {path} is empty")
    if path.stat().st_mode & 0o077:
        log.warning("TURN secret file %s is readable by others than its owner; chmod 600 it", path)
    return data
