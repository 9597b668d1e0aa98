"""Errors raised by :mod:`daemon.crypto`.

::

    CryptoError                 base; catch this to treat any crypto failure as "authentication failed"
     +-- PakeError              a PAKE/key-exchange message was malformed, reflected, reused, or rejected
     +-- BadSignature           a signature (or the key it is checked against) did not verify
     +-- BadKeyFile             stored key material (a seed) has the wrong type or length

Messages never contain secret bytes. Misuse by the caller with local arguments (an unknown role, a
malformed fingerprint, a wrong-length key we generated ourselves) raises ``ValueError`` (or
``TypeError`` for a wrong type) instead.
"""

from __future__ import annotations

__all__ = ["BadKeyFile", "BadSignature", "CryptoError", "PakeError"]


class CryptoError(Exception):
    """Base class of every error this package raises on purpose."""


class PakeError(CryptoError):
    """A key-exchange message was malformed, reflected back to us, used twice, or rejected."""


class BadSignature(CryptoError):
    """A signature failed to verify, or the public key or signature bytes were unusable."""


class BadKeyFile(CryptoError):
    """Seed bytes handed to us for a stored identity have the wrong type or length."""
