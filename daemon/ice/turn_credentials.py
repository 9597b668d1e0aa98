"""TURN REST credentials (coturn's ``use-auth-secret``): short-lived, derived from a shared secret.

The TURN server and the daemon share ``secret``; the daemon mints, per admitted session::

    username   = "<expiry unix seconds>:<session>"
    credential = base64(HMAC-SHA1(secret, username))

and the TURN server recomputes the credential from the username, refusing it once the expiry has
passed (401). The secret is the exact byte string coturn's ``static-auth-secret`` holds. Neither
the secret nor a credential may be logged; :class:`daemon.ice.IceServer` keeps ``credential`` out
of its repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from typing import Final

__all__ = ["MAX_TTL", "mint"]

MAX_TTL: Final = 600.0
"""Longest credential lifetime handed out: 10 minutes, whatever is asked for."""
_SESSION: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def mint(secret: bytes, *, ttl: float, now: float, session: str) -> tuple[str, str]:
    """``(username, credential)`` valid until ``int(now + min(ttl, MAX_TTL))`` (unix seconds).

    ``session`` (``[A-Za-z0-9_-]{1,64}``, a signaling session id) ends up in the username, so the
    TURN server's logs and quotas can tell sessions apart.

    Raises ValueError for an empty secret, a ``ttl`` that is not positive and finite, a
    non-finite ``now`` or a malformed ``session``.
    """
    if not secret:
        raise ValueError("the TURN secret is empty")
    if not 0 < ttl < math.inf or not math.isfinite(now):
        raise ValueError("ttl must be positive and finite, now finite")
    if _SESSION.fullmatch(session) is None:
        raise ValueError("session must be 1..64 characters of [A-Za-z0-9_-]")
    username = f"{int(now + min(ttl, MAX_TTL))}:{session}"
    digest = hmac.new(secret, username.encode("ascii"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")
