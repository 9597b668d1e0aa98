"""The control API's bearer token: ``<state_dir>/api-token``, created 0600 at first start."""

from __future__ import annotations

import secrets
from pathlib import Path

from daemon.storage import write_secret_file

__all__ = ["ensure_api_token", "read_api_token", "TOKEN_FILE"]

TOKEN_FILE = "api-token"


def ensure_api_token(state_dir: Path) -> str:
    """Return the token, creating it (0600, atomically) if the file does not exist yet."""
    path = state_dir / TOKEN_FILE
    if not path.exists():
        write_secret_file(path, (secrets.token_urlsafe(32) + "\n").encode())
    return read_api_token(state_dir)


def read_api_token(state_dir: Path) -> str:
    """Read the token; raises OSError if it is missing and ValueError if the file is empty."""
    token = (state_dir / TOKEN_FILE).read_text().strip()
    if not token:
        raise ValueError(f"{state_dir / TOKEN_FILE} is empty")
    return token
