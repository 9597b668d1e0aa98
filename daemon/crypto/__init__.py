"""Cryptography for doorstep: session keys, device identities, and (``sealing``) frame encryption.

Imports only the standard library, ``nacl`` and ``spake2``; nothing from ``daemon``, no trio, no
file I/O (callers persist raw seed bytes themselves).

Modules:

* :mod:`.errors`: ``CryptoError`` and its subclasses.
* :mod:`.kdf`: HKDF-SHA256 with purpose strings, length-prefixed encoding, canonical fingerprints.
* :mod:`.pake`: ``CodePake`` (SPAKE2), ``EphemeralExchange`` (X25519), ``SessionKey`` (confirm tags,
  subkeys, resume secrets).
* :mod:`.identity`: ``DeviceIdentity`` (Ed25519), channel signatures, device ids, safety words.
* :mod:`.rotation`: ``KeyRotation`` chains: a new device key signed by the old one.
* :mod:`.words`: the 256-word list.
* :mod:`.sealing`: app-layer encryption of DATA frames.
"""

from daemon.crypto.errors import BadKeyFile as BadKeyFile
from daemon.crypto.errors import BadSignature as BadSignature
from daemon.crypto.errors import CryptoError as CryptoError
from daemon.crypto.errors import PakeError as PakeError
from daemon.crypto.identity import DEVICE_AUTH_LABEL as DEVICE_AUTH_LABEL
from daemon.crypto.identity import PAIRING_LABEL as PAIRING_LABEL
from daemon.crypto.identity import DeviceIdentity as DeviceIdentity
from daemon.crypto.identity import device_id_of as device_id_of
from daemon.crypto.identity import fingerprint_words as fingerprint_words
from daemon.crypto.identity import safety_words as safety_words
from daemon.crypto.identity import verify_channel as verify_channel
from daemon.crypto.kdf import ROLES as ROLES
from daemon.crypto.kdf import canonical_fingerprint as canonical_fingerprint
from daemon.crypto.kdf import hkdf_sha256 as hkdf_sha256
from daemon.crypto.pake import PAKE_MESSAGE_BYTES as PAKE_MESSAGE_BYTES
from daemon.crypto.pake import CodePake as CodePake
from daemon.crypto.pake import EphemeralExchange as EphemeralExchange
from daemon.crypto.pake import SessionKey as SessionKey
from daemon.crypto.rotation import MAX_CHAIN as MAX_CHAIN
from daemon.crypto.rotation import KeyRotation as KeyRotation
from daemon.crypto.rotation import sign_rotation as sign_rotation
from daemon.crypto.rotation import verify_chain as verify_chain

# --- sealing exports go here: `from daemon.crypto.sealing import X as X` lines, and the names in __all__ ---

__all__ = [
    "DEVICE_AUTH_LABEL",
    "PAIRING_LABEL",
    "PAKE_MESSAGE_BYTES",
    "ROLES",
    "BadKeyFile",
    "BadSignature",
    "CodePake",
    "CryptoError",
    "DeviceIdentity",
    "EphemeralExchange",
    "KeyRotation",
    "MAX_CHAIN",
    "PakeError",
    "SessionKey",
    "canonical_fingerprint",
    "device_id_of",
    "fingerprint_words",
    "hkdf_sha256",
    "safety_words",
    "sign_rotation",
    "verify_chain",
    "verify_channel",
    # sealing: add its names here too (keep the list sorted)
]
