"""Room password hashing: argon2id (libsodium through pynacl), off the trio thread, bounded.

Each hash or verification takes ``Limits.room_password_memlimit`` bytes of memory and a few
hundred milliseconds on a small board, so :class:`PasswordHasher` runs at most
``Limits.concurrent_password_hashes`` of them at once, each in a worker thread. Verifying
against a room that does not exist does the same work against a dummy hash, so the reply time
does not tell whether a room id exists.
"""

from __future__ import annotations

from functools import partial

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import trio

from daemon.signaling.limits import Limits

__all__ = ["PasswordHasher"]


class PasswordHasher:
    """argon2id ``str``/``verify`` with the cost from :class:`Limits`; one per server."""

    def __init__(self, limits: Limits) -> None:
        self._opslimit = limits.room_password_opslimit
        self._memlimit = limits.room_password_memlimit
        self._slots = trio.Semaphore(limits.concurrent_password_hashes)
        self._dummy: bytes | None = None

    async def hash(self, password: str) -> bytes:
        """The argon2id string (``$argon2id$v=19$m=...``) for ``password`` (UTF-8)."""
        async with self._slots:
            return await trio.to_thread.run_sync(
                partial(
                    argon2id.str,
                    password.encode("utf-8"),
                    opslimit=self._opslimit,
                    memlimit=self._memlimit,
                )
            )

    async def verify(self, hashed: bytes | None, password: str) -> bool:
        """Whether ``password`` matches ``hashed``; False for ``None`` (after the same work)."""
        if hashed is None:
            if self._dummy is None:
                self._dummy = await self.hash("\x00 no such room \x00")
            hashed, password = self._dummy, "\x01"
            await self._verify(hashed, password)
            return False
        return await self._verify(hashed, password)

    async def _verify(self, hashed: bytes, password: str) -> bool:
        async with self._slots:
            return await trio.to_thread.run_sync(_verify, hashed, password.encode("utf-8"))


def _verify(hashed: bytes, password: bytes) -> bool:
    try:
        return bool(argon2id.verify(hashed, password))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False
