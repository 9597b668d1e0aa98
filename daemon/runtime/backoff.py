"""Retry delays: jittered exponential backoff."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): full jitter, capped."""
    return random.uniform(base / 2, min(cap, base * 2**attempt))
