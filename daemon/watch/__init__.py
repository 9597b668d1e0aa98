"""Watching the outbox: an inotify backend (``backend``, through ``watchfiles``) and the pure
debounce stage (``stability``) that says when a dropped file is complete, emitting path batches."""

from .backend import DEFAULT_RESCAN as DEFAULT_RESCAN
from .backend import watch_outbox as watch_outbox
from .stability import DEFAULT_SETTLE as DEFAULT_SETTLE
from .stability import Ready as Ready
from .stability import Stability as Stability
from .stability import is_ignored as is_ignored
from .stability import is_under as is_under

__all__ = ["DEFAULT_RESCAN", "DEFAULT_SETTLE", "Ready", "Stability", "is_ignored", "is_under", "watch_outbox"]
