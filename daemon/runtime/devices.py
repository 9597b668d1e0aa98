"""The device book: paired devices, their pinned public keys, and whether they are trusted.

Pairing (``pair`` mode of the authentication step) calls :meth:`DeviceBook.pin`; the ``device``
mode asks :meth:`DeviceBook.trusts` before it accepts a key, and :meth:`DeviceBook.touch` after.
The owner lists, renames, approves, revokes and forgets devices through the control API. A revoked
device stays in the book (as revoked) so that refusing it can be explained; forgetting removes it.

Names come from two places and are treated differently: a name the owner types (:meth:`rename`)
is checked strictly and refused with :class:`BadDeviceName` (a ``ValueError``); a name the peer sent
while pairing (:meth:`pin`) is only cleaned, since a silly name must not break pairing.
"""

from __future__ import annotations

import base64
import builtins
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from daemon.crypto import device_id_of, fingerprint_words, safety_words
from daemon.facade import BadDeviceName, UnknownDevice
from daemon.state import DeviceRecord, DeviceStatus, StateDB

__all__ = ["DeviceBook", "UnknownDevice", "BadDeviceName", "MAX_NAME_LENGTH", "check_name"]

MAX_NAME_LENGTH = 64
_ALLOWED_FORMAT_CHARS = {"\u200d"}  # zero-width joiner: part of many emoji


def _unprintable(ch: str) -> bool:
    """Control, format (bidi overrides, zero-width), surrogate, private-use and line/paragraph
    separator characters: things that hide or rearrange what a terminal or page shows."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") and ch not in _ALLOWED_FORMAT_CHARS


def check_name(name: object) -> str:
    """Return ``name`` trimmed (and NFC-normalised) if it is a usable device name.

    Raises :class:`BadDeviceName` (a ``ValueError``) unless it is a string of 1 to
    :data:`MAX_NAME_LENGTH` characters after trimming, without control or invisible characters.
    """
    if not isinstance(name, str):
        raise BadDeviceName("a device name must be a string")
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise BadDeviceName("a device name must not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise BadDeviceName(f"a device name is at most {MAX_NAME_LENGTH} characters, not {len(cleaned)}")
    if bad := next((ch for ch in cleaned if _unprintable(ch)), None):
        raise BadDeviceName(f"a device name must not contain control or invisible characters (found U+{ord(bad):04X})")
    return cleaned


def _peer_name(name: object, device_id: str) -> str:
    """What to call a device that introduced itself as ``name``: cleaned, never refused."""
    if isinstance(name, str):
        text = unicodedata.normalize("NFC", name)
        printable = "".join(" " if _unprintable(ch) or ch.isspace() else ch for ch in text)
        cleaned = " ".join(printable.split())[:MAX_NAME_LENGTH].strip()
        if cleaned:
            return cleaned
    return f"device {device_id[:6]}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class DeviceBook:
    """Paired devices kept in the state database. ``own_public_key`` (this install's device key),
    when given, lets :meth:`describe` show the safety words of each pair."""

    def __init__(self, db: StateDB, *, own_public_key: bytes | None = None,
                 on_change: Callable[[DeviceRecord | None, str], None] | None = None,
                 on_event: Callable[[DeviceRecord | None, str], None] | None = None) -> None:
        """``on_change(record, device_id)`` runs after the owner approves, revokes (record given)
        or forgets (record None) a device; ``on_event(record, device_id)`` after any change to the
        book (pinned, renamed, approved, revoked; None: forgotten), for the event stream."""
        self._db = db
        self._on_change = on_change
        self.presence: Callable[[str], Any] | None = None
        """``presence(device_id)`` -> an object with ``to_json()``; shown in :meth:`describe`."""
        self._on_event = on_event
        self._own_public_key = bytes(own_public_key) if own_public_key is not None else None

    def set_own_key(self, public_key: bytes) -> None:
        """This install rotated its key: safety words are shown for the new one."""
        self._own_public_key = bytes(public_key)

    # -- for the authentication step -------------------------------------------------------------

    def pin(self, public_key: bytes, name: str, *, signal_url: str | None, approved: bool = True,
            root_key: bytes | None = None) -> DeviceRecord:
        """Remember ``public_key`` as a paired device, approved or (``approved=False``) pending.

        ``root_key``: the key the device was first paired with (it rotated since), which names it;
        default ``public_key``. Pinning a known key again (re-pairing) updates its name, its signal
        URL (if given) and its status, so a revoked device becomes trusted again only with
        ``approved=True``. Raises ``ValueError`` unless the keys are 32 bytes, or when the device id
        is pinned with another key already (a rotated device's older or forked key).
        """
        device_id = device_id_of(root_key if root_key is not None else public_key)
        status = DeviceStatus.APPROVED if approved else DeviceStatus.PENDING
        try:
            record = self._db.add_device(device_id=device_id, public_key=bytes(public_key),
                                         name=_peer_name(name, device_id), status=status, signal_url=signal_url)
        except sqlite3.IntegrityError:
            raise ValueError(f"device {device_id} is pinned with another key") from None
        self._told(record, record.device_id)
        return record

    def _told(self, record: DeviceRecord | None, device_id: str) -> None:
        if self._on_event is not None:
            self._on_event(record, device_id)

    def trusts(self, public_key: bytes) -> bool:
        """True only if ``public_key`` is pinned and approved (not pending, not revoked)."""
        record = self.by_key(public_key)
        return record is not None and record.status is DeviceStatus.APPROVED

    def by_key(self, public_key: bytes) -> DeviceRecord | None:
        """The device pinned with ``public_key`` (whatever its status), to explain a refusal."""
        if not isinstance(public_key, (bytes, bytearray, memoryview)):
            return None
        return self._db.device_by_key(bytes(public_key))

    def rotate(self, old_key: bytes, new_key: bytes) -> None:
        """A trusted device proved ``new_key`` replaces ``old_key``: pin the new key (same id,
        name and status); the old one is trusted no more."""
        record = self.by_key(old_key)
        if record is not None and self._db.replace_device_key(old_key, new_key):
            self._told(self.get(record.device_id), record.device_id)

    def retired(self, public_key: bytes) -> bool:
        """A key some device rotated away from: refused, never held for approval."""
        return isinstance(public_key, (bytes, bytearray, memoryview)) and self._db.key_retired(bytes(public_key))

    def revoked_keys(self) -> builtins.list[bytes]:
        """Current keys of the devices revoked here, announced to trusted peers."""
        return [r.public_key for r in self._db.list_devices() if r.status is DeviceStatus.REVOKED]

    def revoke_keys(self, keys: Iterable[bytes]) -> builtins.list[str]:
        """A trusted peer says its owner revoked ``keys``: revoke those we have paired too (and
        approved or pending); returns their ids. Keys we do not know are ignored."""
        revoked = []
        for key in keys:
            record = self.by_key(key)
            if record is not None and record.status is not DeviceStatus.REVOKED:
                self.revoke(record.device_id)
                revoked.append(record.device_id)
        return revoked

    def touch(self, device_id: str, now: float | None = None) -> None:
        """Note that the device just authenticated (its ``last_seen``)."""
        self._db.touch_device(device_id, now)

    # -- for the owner (control API) -------------------------------------------------------------

    def list(self) -> builtins.list[DeviceRecord]:
        """Every device, revoked ones included, oldest pairing first."""
        return self._db.list_devices()

    def get(self, device_id: str) -> DeviceRecord:
        record = self._db.get_device(device_id)
        if record is None:
            raise UnknownDevice(device_id)
        return record

    def rename(self, device_id: str, name: str) -> DeviceRecord:
        """Raises :class:`BadDeviceName` (checked first) or :class:`UnknownDevice`."""
        cleaned = check_name(name)
        if not self._db.rename_device(device_id, cleaned):
            raise UnknownDevice(device_id)
        record = self.get(device_id)
        self._told(record, device_id)
        return record

    def approve(self, device_id: str) -> DeviceRecord:
        return self._set_status(device_id, DeviceStatus.APPROVED)

    def revoke(self, device_id: str) -> DeviceRecord:
        """Stop trusting the device; it stays listed as revoked."""
        return self._set_status(device_id, DeviceStatus.REVOKED)

    def forget(self, device_id: str) -> None:
        """Remove the device and its pinned key; it can only come back by pairing again."""
        if not self._db.remove_device(device_id):
            raise UnknownDevice(device_id)
        self._told(None, device_id)
        if self._on_change is not None:
            self._on_change(None, device_id)

    def _set_status(self, device_id: str, status: DeviceStatus) -> DeviceRecord:
        if not self._db.set_device_status(device_id, status):
            raise UnknownDevice(device_id)
        record = self.get(device_id)
        self._told(record, device_id)
        if self._on_change is not None:
            self._on_change(record, device_id)
        return record

    def describe(self, record: DeviceRecord) -> dict[str, Any]:
        """JSON-safe view of ``record``. ``safety_words`` only when the book knows its own key."""
        out: dict[str, Any] = {
            "id": record.device_id,
            "name": record.name,
            "status": record.status.value,
            "paired_at": record.paired_at,
            "last_seen": record.last_seen,
            "signal_url": record.signal_url,
            "public_key": _b64url(record.public_key),
            "fingerprint": list(fingerprint_words(record.public_key)),
        }
        if self._own_public_key is not None:
            out["safety_words"] = list(safety_words(self._own_public_key, record.public_key))
        if self.presence is not None:
            out["presence"] = self.presence(record.device_id).to_json()
        return out
