"""Shared test plumbing: real components or a loud reason why not."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> str:
    """Path of executable ``name``. In CI its absence fails the test; elsewhere it skips, saying why."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it with apt-get)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path
