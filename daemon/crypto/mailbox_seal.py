"""Sealed mailbox bundles: files for a device that is offline, stored by an appliance that cannot read them.

A *bundle* is what device X leaves for device Y at an appliance A (docs/mailbox.md). X draws a
random 32-byte *bundle key* ``K`` and seals it to Y alone (``nacl.public.SealedBox`` to the X25519
form of Y's Ed25519 device key); A never holds ``K``. A bundle is files whose names say nothing:

``manifest.sealed``::

    MAGIC (6) | recipient Ed25519 key (32) | SealedBox(K) (80)          <- the envelope (cleartext)
    secretstream header (24) | one FINAL message (manifest + 17)       <- key HKDF(K, "…/manifest"),
                                                                          associated data = envelope

  The manifest is ``signature (64) | sender Ed25519 key (32) | JSON``; the JSON holds the bundle
  id, the creation time and, per file, its name, size and SHA-256 (of the plaintext). The
  signature (by the sender's device key) covers ``length_prefixed(SIGN_LABEL, envelope, JSON)``:
  it tells the recipient which device made the bundle (anyone who knows Y's public key, A
  included, can make *a* bundle for Y; only X can make one signed by X).

``<n>.sealed`` (file ``n`` of the manifest, from 0)::

    secretstream header (24) | message* | FINAL message                <- key HKDF(K, "…/file/<n>")

  Every message but the last carries exactly :data:`CHUNK` plaintext bytes; the last one (FINAL)
  carries the rest, maybe nothing. So a file's sealed size follows from its size
  (:func:`sealed_size`), and the opener knows where each message ends and which one must be
  FINAL. secretstream chains the messages: a reordered, dropped, repeated or altered chunk does
  not open; a file cut short never reaches its FINAL message; a file swapped for another is under
  another key.

Everything here is pure (bytes in, bytes out, no I/O): the sealers and openers are fed and drained
by the caller. Failures of the bundle's data raise :class:`BundleError`; misuse with local
arguments raises ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.public
import nacl.signing
from nacl.bindings import (
    crypto_secretstream_xchacha20poly1305_ABYTES,
    crypto_secretstream_xchacha20poly1305_HEADERBYTES,
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_init_push,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
    crypto_sign_ed25519_pk_to_curve25519,
)

from daemon.crypto.errors import CryptoError
from daemon.crypto.kdf import hkdf_sha256, length_prefixed

__all__ = [
    "CHUNK",
    "ENVELOPE_SIZE",
    "MAGIC",
    "MAX_FILES",
    "MAX_MANIFEST",
    "MANIFEST_NAME",
    "BundleError",
    "BundleSealer",
    "Envelope",
    "FileOpener",
    "FileSealer",
    "ManifestEntry",
    "OpenedBundle",
    "file_name",
    "open_manifest",
    "read_envelope",
    "sealed_size",
]

MAGIC = b"DSMB1\x00"
"""First bytes of every ``manifest.sealed``: doorstep mailbox bundle, format 1."""

_KEY = 32
_SEALED_KEY = 32 + 16 + _KEY  # SealedBox: ephemeral public key | MAC | K
ENVELOPE_SIZE = len(MAGIC) + 32 + _SEALED_KEY
"""Bytes of the cleartext envelope at the start of ``manifest.sealed`` (118)."""

_HEADER = crypto_secretstream_xchacha20poly1305_HEADERBYTES
_ABYTES = crypto_secretstream_xchacha20poly1305_ABYTES
_TAG_MESSAGE = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = crypto_secretstream_xchacha20poly1305_TAG_FINAL

CHUNK = 64 * 1024
"""Plaintext bytes per sealed message of a file (all but the last)."""
MAX_MANIFEST = 1024 * 1024
"""Largest ``manifest.sealed`` accepted, in bytes: checked before anything is decrypted."""
MAX_FILES = 10_000
MAX_NAME = 4096
MAX_SIZE = 1 << 50
MANIFEST_NAME = "manifest.sealed"

SIGN_LABEL = b"doorstep/v1/mailbox/manifest"
_MANIFEST_PURPOSE = "doorstep/v1/mailbox/manifest"
_FILE_PURPOSE = "doorstep/v1/mailbox/file/"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")


class BundleError(CryptoError):
    """A bundle does not open: not for this device's key, tampered, truncated, reordered,
    oversized or malformed. The message says which, never anything secret."""


def sealed_size(size: int) -> int:
    """Bytes of ``<n>.sealed`` for a file of ``size`` plaintext bytes."""
    return _HEADER + size + _ABYTES * (size // CHUNK + 1)


def file_name(index: int) -> str:
    """The name of file ``index``'s sealed bytes within a bundle."""
    return f"{index}.sealed"


def _file_key(key: bytes, index: int) -> bytes:
    return hkdf_sha256(key, purpose=f"{_FILE_PURPOSE}{index}")


def _x25519_public(ed25519_public: bytes) -> nacl.public.PublicKey:
    if type(ed25519_public) is not bytes or len(ed25519_public) != 32:
        raise ValueError("a device public key is 32 bytes")
    try:
        return nacl.public.PublicKey(crypto_sign_ed25519_pk_to_curve25519(ed25519_public))
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise ValueError(f"not a usable device public key: {exc}") from None


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One plaintext file of a bundle: its name (as the sender named it, unsanitized), size and SHA-256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """What anyone can read of a bundle: whose key it is sealed to."""

    recipient_key: bytes


def read_envelope(data: bytes) -> Envelope:
    """Parse the cleartext envelope at the start of ``manifest.sealed`` (at least
    :data:`ENVELOPE_SIZE` bytes of it). Raises :class:`BundleError` if it is not one."""
    if len(data) < ENVELOPE_SIZE or not data.startswith(MAGIC):
        raise BundleError("not a doorstep mailbox bundle (bad envelope)")
    return Envelope(recipient_key=bytes(data[len(MAGIC):len(MAGIC) + 32]))


class _Stream:
    """secretstream pushing CHUNK-sized messages; returns sealed bytes as they are ready."""

    def __init__(self, key: bytes) -> None:
        self._state = crypto_secretstream_xchacha20poly1305_state()
        self._pending = crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        self._buffer = bytearray()
        self.finished = False

    def push(self, data: bytes | bytearray | memoryview) -> bytes:
        if self.finished:
            raise ValueError("the stream is finished")
        self._buffer += data
        out = [self._pending]
        self._pending = b""
        while len(self._buffer) > CHUNK:  # keep the tail: the last message must be FINAL
            out.append(crypto_secretstream_xchacha20poly1305_push(self._state, bytes(self._buffer[:CHUNK]),
                                                                  None, _TAG_MESSAGE))
            del self._buffer[:CHUNK]
        return b"".join(out)

    def finish(self) -> bytes:
        if self.finished:
            raise ValueError("the stream is finished")
        out = [self._pending]
        if len(self._buffer) == CHUNK:  # a full chunk, then an empty FINAL (sealed_size counts it)
            out.append(crypto_secretstream_xchacha20poly1305_push(self._state, bytes(self._buffer), None,
                                                                  _TAG_MESSAGE))
            self._buffer.clear()
        out.append(crypto_secretstream_xchacha20poly1305_push(self._state, bytes(self._buffer), None, _TAG_FINAL))
        self._buffer.clear()
        self.finished = True
        return b"".join(out)


class FileSealer:
    """Seals one file of a bundle as it streams: write what :meth:`push` and :meth:`finish`
    return, in order, to ``<n>.sealed``. Counts and hashes the plaintext for the manifest."""

    def __init__(self, key: bytes, index: int) -> None:
        self.index = index
        self._stream = _Stream(_file_key(key, index))
        self._digest = hashlib.sha256()
        self.size = 0

    def push(self, data: bytes | bytearray | memoryview) -> bytes:
        self._digest.update(data)
        self.size += len(data)
        return self._stream.push(data)

    def finish(self) -> bytes:
        return self._stream.finish()

    @property
    def finished(self) -> bool:
        return self._stream.finished

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class BundleSealer:
    """Makes one bundle for ``recipient_key`` (the recipient's Ed25519 device key), signed by the
    sender's device key (``sender_seed``, 32 bytes). Seal files with :meth:`file` (indexes 0, 1,
    ... in order), then :meth:`manifest` with their names. The bundle key lives only in this object."""

    def __init__(self, recipient_key: bytes, *, sender_seed: bytes, bundle_id: str | None = None,
                 clock: float | None = None) -> None:
        box = nacl.public.SealedBox(_x25519_public(recipient_key))
        self._key = secrets.token_bytes(_KEY)
        self._signer = nacl.signing.SigningKey(sender_seed)
        self.bundle_id = bundle_id or secrets.token_hex(16)
        if not _ID_RE.fullmatch(self.bundle_id):
            raise ValueError("a bundle id is 1..64 characters of [A-Za-z0-9_-]")
        self.envelope = MAGIC + recipient_key + box.encrypt(self._key)
        self.created = int(time.time() if clock is None else clock)
        self._files: list[FileSealer] = []

    def file(self) -> FileSealer:
        """A sealer for the next file (index ``len(files)``)."""
        if len(self._files) >= MAX_FILES:
            raise ValueError(f"a bundle holds at most {MAX_FILES} files")
        sealer = FileSealer(self._key, len(self._files))
        self._files.append(sealer)
        return sealer

    def manifest(self, names: Sequence[str]) -> bytes:
        """The whole ``manifest.sealed``, once every file is finished; ``names[n]`` names file n."""
        if len(names) != len(self._files) or not all(f.finished for f in self._files):
            raise ValueError("name every file, and finish every file first")
        body = json.dumps({
            "v": 1, "bundle": self.bundle_id, "created": self.created,
            "files": [[name, f.size, f.sha256] for name, f in zip(names, self._files)],
        }, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        signature = self._signer.sign(length_prefixed(SIGN_LABEL, self.envelope, body)).signature
        state = crypto_secretstream_xchacha20poly1305_state()
        header = crypto_secretstream_xchacha20poly1305_init_push(state, hkdf_sha256(self._key, purpose=_MANIFEST_PURPOSE))
        plain = bytes(signature) + bytes(self._signer.verify_key) + body
        sealed = self.envelope + header + crypto_secretstream_xchacha20poly1305_push(state, plain, self.envelope,
                                                                                      _TAG_FINAL)
        if len(sealed) > MAX_MANIFEST:
            raise ValueError(f"the manifest would be {len(sealed)} bytes; at most {MAX_MANIFEST}")
        return sealed


@dataclass(frozen=True, slots=True)
class OpenedBundle:
    """A manifest that opened and verified: what the bundle holds and who signed it."""

    bundle_id: str
    sender_key: bytes
    created: int
    files: tuple[ManifestEntry, ...]
    _key: bytes = field(repr=False)

    def opener(self, index: int) -> FileOpener:
        """An opener for ``<index>.sealed``."""
        if not 0 <= index < len(self.files):
            raise ValueError(f"the bundle has no file {index}")
        return FileOpener(_file_key(self._key, index), self.files[index])


def open_manifest(data: bytes, recipient_seed: bytes) -> OpenedBundle:
    """Open ``manifest.sealed`` with the recipient's device seed (32 bytes). Raises
    :class:`BundleError` when it is oversized, not sealed to this key, tampered, unsigned or malformed."""
    if len(data) > MAX_MANIFEST:
        raise BundleError(f"the manifest is {len(data)} bytes; at most {MAX_MANIFEST} are accepted")
    envelope = read_envelope(data)
    signing = nacl.signing.SigningKey(recipient_seed)
    if envelope.recipient_key != bytes(signing.verify_key):
        raise BundleError("the bundle is sealed to another device's key")
    head = data[:ENVELOPE_SIZE]
    try:
        key = nacl.public.SealedBox(signing.to_curve25519_private_key()).decrypt(data[len(MAGIC) + 32:ENVELOPE_SIZE])
    except nacl.exceptions.CryptoError:
        raise BundleError("the bundle key does not open with this device's key") from None
    rest = data[ENVELOPE_SIZE:]
    if len(rest) < _HEADER + _ABYTES + 96:
        raise BundleError("the manifest is truncated")
    state = crypto_secretstream_xchacha20poly1305_state()
    crypto_secretstream_xchacha20poly1305_init_pull(state, rest[:_HEADER], hkdf_sha256(key, purpose=_MANIFEST_PURPOSE))
    try:
        plain, tag = crypto_secretstream_xchacha20poly1305_pull(state, rest[_HEADER:], head)
    except nacl.exceptions.CryptoError:
        raise BundleError("the manifest failed authentication (tampered or truncated)") from None
    if tag != _TAG_FINAL:
        raise BundleError("the manifest is not a single final message")
    signature, sender_key, body = plain[:64], plain[64:96], plain[96:]
    try:
        nacl.signing.VerifyKey(sender_key).verify(length_prefixed(SIGN_LABEL, head, body), signature)
    except (nacl.exceptions.CryptoError, ValueError):
        raise BundleError("the manifest's signature does not verify") from None
    bundle_id, created, files = _parse_manifest(body)
    return OpenedBundle(bundle_id=bundle_id, sender_key=bytes(sender_key), created=created, files=files, _key=key)


def _parse_manifest(body: bytes) -> tuple[str, int, tuple[ManifestEntry, ...]]:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError("the manifest is not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or set(doc) != {"v", "bundle", "created", "files"}:
        raise BundleError("the manifest is not a version 1 manifest")
    bundle_id, created, files = doc["bundle"], doc["created"], doc["files"]
    if not isinstance(bundle_id, str) or not _ID_RE.fullmatch(bundle_id):
        raise BundleError("the manifest's bundle id is malformed")
    if type(created) is not int or created < 0:
        raise BundleError("the manifest's creation time is malformed")
    if not isinstance(files, list) or not 1 <= len(files) <= MAX_FILES:
        raise BundleError(f"a manifest lists 1..{MAX_FILES} files")
    entries = []
    for item in files:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and 0 < len(item[0]) <= MAX_NAME and type(item[1]) is int and 0 <= item[1] <= MAX_SIZE
                and isinstance(item[2], str) and _SHA_RE.fullmatch(item[2])):
            raise BundleError("the manifest lists a malformed file")
        entries.append(ManifestEntry(name=item[0], size=item[1], sha256=item[2]))
    return bundle_id, created, tuple(entries)


class FileOpener:
    """Opens one ``<n>.sealed`` as it streams: :meth:`push` the sealed bytes in order (any
    slicing), write what it returns, then :meth:`finish`, which checks the end, size and SHA-256.
    After any :class:`BundleError` the opener is broken for good."""

    def __init__(self, key: bytes, entry: ManifestEntry) -> None:
        self.entry = entry
        self._key = key
        self._state = crypto_secretstream_xchacha20poly1305_state()
        self._expected = sealed_size(entry.size)
        self._messages = entry.size // CHUNK + 1
        self._seen = 0  # sealed bytes taken in
        self._opened = 0  # messages opened
        self._buffer = bytearray()
        self._started = False
        self._digest = hashlib.sha256()
        self._broken = False

    def push(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._broken:
            raise BundleError("the file failed earlier")
        self._broken = True
        self._seen += len(data)
        if self._seen > self._expected:
            raise BundleError(f"{self.entry.name!r}: more sealed bytes than its manifest size allows")
        self._buffer += data
        if not self._started:
            if len(self._buffer) < _HEADER:
                self._broken = False
                return b""
            crypto_secretstream_xchacha20poly1305_init_pull(self._state, bytes(self._buffer[:_HEADER]), self._key)
            del self._buffer[:_HEADER]
            self._started = True
        out = []
        while self._opened < self._messages:
            last = self._opened == self._messages - 1
            need = (self.entry.size % CHUNK if last else CHUNK) + _ABYTES
            if len(self._buffer) < need:
                break
            try:
                plain, tag = crypto_secretstream_xchacha20poly1305_pull(self._state, bytes(self._buffer[:need]), None)
            except nacl.exceptions.CryptoError:
                raise BundleError(f"{self.entry.name!r}: a sealed chunk failed authentication "
                                  "(tampered, reordered or from another file)") from None
            if tag != (_TAG_FINAL if last else _TAG_MESSAGE):
                raise BundleError(f"{self.entry.name!r}: a chunk ends the file in the wrong place")
            del self._buffer[:need]
            self._opened += 1
            self._digest.update(plain)
            out.append(plain)
        self._broken = False
        return b"".join(out)

    def finish(self) -> None:
        """Raises :class:`BundleError` unless every chunk opened and the plaintext matches the manifest."""
        if self._broken or self._opened != self._messages or self._buffer or self._seen != self._expected:
            raise BundleError(f"{self.entry.name!r}: the sealed file is truncated")
        if self._digest.hexdigest() != self.entry.sha256:
            raise BundleError(f"{self.entry.name!r}: SHA-256 mismatch")
