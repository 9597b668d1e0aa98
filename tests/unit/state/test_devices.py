"""The device book: pinned keys in the state database, and who is trusted."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest

from daemon.crypto import DeviceIdentity, device_id_of, fingerprint_words, safety_words
from daemon.runtime.devices import MAX_NAME_LENGTH, DeviceBook, UnknownDevice, check_name
from daemon.state import DeviceRecord, DeviceStatus, StateDB

KEY_A = DeviceIdentity.generate().public_key
KEY_B = DeviceIdentity.generate().public_key
OWN = DeviceIdentity.generate().public_key


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    return StateDB(tmp_path / "state.db")


@pytest.fixture
def book(db: StateDB) -> DeviceBook:
    return DeviceBook(db, own_public_key=OWN)


# -- StateDB ------------------------------------------------------------------------------------


def test_devices_survive_reopen_in_pairing_order(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    first = db.add_device(device_id="a", public_key=KEY_A, name="laptop", status=DeviceStatus.APPROVED,
                          signal_url="wss://a.example/signal/v1")
    db.add_device(device_id="b", public_key=KEY_B, name="phone", status=DeviceStatus.PENDING)
    db.touch_device("a", now=1234.5)
    db.close()

    db = StateDB(tmp_path / "state.db")
    listed = db.list_devices()
    assert [d.device_id for d in listed] == ["a", "b"]
    a = db.get_device("a")
    assert a == DeviceRecord(device_id="a", public_key=KEY_A, name="laptop", status=DeviceStatus.APPROVED,
                             paired_at=first.paired_at, last_seen=1234.5, signal_url="wss://a.example/signal/v1")
    assert type(a.public_key) is bytes
    assert db.device_by_key(KEY_B) == listed[1]
    assert listed[1].last_seen is None and listed[1].signal_url is None
    assert db.get_device("nope") is None and db.device_by_key(b"\0" * 32) is None


def test_rename_status_touch_and_remove_report_unknown_ids(db: StateDB) -> None:
    db.add_device(device_id="a", public_key=KEY_A, name="laptop", status=DeviceStatus.PENDING)
    assert db.rename_device("a", "work laptop") and not db.rename_device("x", "y")
    assert db.set_device_status("a", DeviceStatus.APPROVED) and not db.set_device_status("x", DeviceStatus.REVOKED)
    db.touch_device("x")  # no such device: nothing happens
    record = db.get_device("a")
    assert record is not None and (record.name, record.status) == ("work laptop", DeviceStatus.APPROVED)
    assert db.remove_device("a") and not db.remove_device("a")
    assert db.list_devices() == []


def test_repairing_a_known_key_updates_it_in_place(db: StateDB) -> None:
    first = db.add_device(device_id="a", public_key=KEY_A, name="laptop", status=DeviceStatus.APPROVED,
                          signal_url="wss://old/signal/v1")
    db.touch_device("a", now=99.0)
    db.set_device_status("a", DeviceStatus.REVOKED)

    again = db.add_device(device_id="a", public_key=KEY_A, name="laptop 2", status=DeviceStatus.PENDING)
    assert again.status is DeviceStatus.PENDING  # the caller's status, not an automatic approval
    assert (again.name, again.paired_at, again.last_seen) == ("laptop 2", first.paired_at, 99.0)
    assert again.signal_url == "wss://old/signal/v1"  # None means "not told": the old URL stays
    again = db.add_device(device_id="a", public_key=KEY_A, name="laptop 2", status=DeviceStatus.APPROVED,
                          signal_url="wss://new/signal/v1")
    assert (again.status, again.signal_url) == (DeviceStatus.APPROVED, "wss://new/signal/v1")
    assert len(db.list_devices()) == 1


def test_one_id_cannot_name_two_keys(db: StateDB) -> None:
    db.add_device(device_id="a", public_key=KEY_A, name="laptop", status=DeviceStatus.APPROVED)
    with pytest.raises(sqlite3.IntegrityError):
        db.add_device(device_id="a", public_key=KEY_B, name="impostor", status=DeviceStatus.APPROVED)
    assert db.get_device("a").public_key == KEY_A  # type: ignore[union-attr]


# -- DeviceBook ---------------------------------------------------------------------------------


def test_pin_derives_the_id_and_trusts_only_approved_keys(book: DeviceBook) -> None:
    record = book.pin(KEY_A, "laptop", signal_url=None)
    assert record.device_id == device_id_of(KEY_A) and record.status is DeviceStatus.APPROVED
    assert book.trusts(KEY_A) and not book.trusts(KEY_B)

    pending = book.pin(KEY_B, "phone", signal_url="wss://x/signal/v1", approved=False)
    assert pending.status is DeviceStatus.PENDING and not book.trusts(KEY_B)
    book.approve(pending.device_id)
    assert book.trusts(KEY_B)

    book.revoke(record.device_id)
    assert not book.trusts(KEY_A)
    assert book.get(record.device_id).status is DeviceStatus.REVOKED  # still listed: refusal explainable
    assert book.by_key(KEY_A).status is DeviceStatus.REVOKED  # type: ignore[union-attr]
    book.forget(record.device_id)
    assert not book.trusts(KEY_A) and book.by_key(KEY_A) is None
    assert [d.device_id for d in book.list()] == [pending.device_id]


def test_trusts_refuses_malformed_keys(book: DeviceBook) -> None:
    book.pin(KEY_A, "laptop", signal_url=None)
    assert not book.trusts(b"")
    assert not book.trusts(KEY_A[:31])
    assert not book.trusts("not bytes")  # type: ignore[arg-type]


def test_repinning_a_revoked_key_restores_trust_only_when_approved(book: DeviceBook) -> None:
    device_id = book.pin(KEY_A, "laptop", signal_url=None).device_id
    book.revoke(device_id)
    assert book.pin(KEY_A, "laptop", signal_url=None, approved=False).status is DeviceStatus.PENDING
    assert not book.trusts(KEY_A)
    assert book.pin(KEY_A, "laptop", signal_url=None).status is DeviceStatus.APPROVED
    assert book.trusts(KEY_A)


def test_pin_refuses_a_key_of_the_wrong_length(book: DeviceBook) -> None:
    with pytest.raises(ValueError):
        book.pin(b"short", "x", signal_url=None)


@pytest.mark.parametrize(("sent", "kept"), [
    ("  laptop  ", "laptop"),
    ("", None),
    ("   ", None),
    ("\x00\x1b[31m", "[31m"),
    ("evil\u202eexe.txt", "evil exe.txt"),
    ("two\nlines\tname", "two lines name"),
    ("x" * 100, "x" * MAX_NAME_LENGTH),
    (None, None),
])
def test_pin_cleans_the_name_the_peer_sent(book: DeviceBook, sent: object, kept: str | None) -> None:
    record = book.pin(KEY_A, sent, signal_url=None)  # type: ignore[arg-type]
    assert record.name == (kept if kept is not None else f"device {record.device_id[:6]}")


@pytest.mark.parametrize("name", ["", "   ", "x" * (MAX_NAME_LENGTH + 1), "bad\x00name", "tab\there",
                                  "new\nline", "bidi\u202eoverride", "zero\u200bwidth", 42])
def test_rename_refuses_bad_names_as_value_errors(book: DeviceBook, name: object) -> None:
    device_id = book.pin(KEY_A, "laptop", signal_url=None).device_id
    with pytest.raises(ValueError):
        book.rename(device_id, name)  # type: ignore[arg-type]
    assert book.get(device_id).name == "laptop"


def test_rename_trims_and_allows_unicode(book: DeviceBook) -> None:
    device_id = book.pin(KEY_A, "laptop", signal_url=None).device_id
    assert book.rename(device_id, "  Küchen-PC 👩\u200d💻  ").name == "Küchen-PC 👩\u200d💻"
    assert book.rename(device_id, "y" * MAX_NAME_LENGTH).name == "y" * MAX_NAME_LENGTH
    assert check_name("e\u0301") == "\u00e9"  # NFC


def test_unknown_ids_raise_unknown_device_a_key_error(book: DeviceBook) -> None:
    for call in (book.get, book.approve, book.revoke, book.forget, lambda i: book.rename(i, "name")):
        with pytest.raises(UnknownDevice) as caught:
            call("nope")
        assert isinstance(caught.value, KeyError)
        assert str(caught.value) == "no paired device 'nope'"


def test_a_bad_name_is_reported_before_an_unknown_id(book: DeviceBook) -> None:
    with pytest.raises(ValueError):
        book.rename("nope", "")


def test_describe_is_json_safe_and_shows_words(db: StateDB) -> None:
    book = DeviceBook(db, own_public_key=OWN)
    record = book.pin(KEY_A, "laptop", signal_url="wss://x/signal/v1")
    described = book.describe(record)
    assert described == {
        "id": record.device_id, "name": "laptop", "status": "approved", "paired_at": record.paired_at,
        "last_seen": None, "signal_url": "wss://x/signal/v1",
        "public_key": base64.urlsafe_b64encode(KEY_A).decode().rstrip("="),
        "fingerprint": list(fingerprint_words(KEY_A)),
        "safety_words": list(safety_words(OWN, KEY_A)),
    }
    assert "=" not in described["public_key"]
    assert "safety_words" not in DeviceBook(db).describe(record)  # no own key: no safety words


def test_a_rotation_repins_the_same_device_and_the_old_key_is_trusted_no_more(book: DeviceBook) -> None:
    old, new = b"o" * 32, b"n" * 32
    record = book.pin(old, "laptop", signal_url=None)
    book.rotate(old, new)
    after = book.get(record.device_id)
    assert (after.public_key, after.name, after.status) == (new, "laptop", DeviceStatus.APPROVED)
    assert book.trusts(new) and not book.trusts(old) and book.by_key(old) is None
    assert book.retired(old) and not book.retired(new)
    book.rotate(b"x" * 32, b"y" * 32)  # a key nobody pinned: nothing happens
    assert [d.device_id for d in book.list()] == [record.device_id]


def test_revocations_from_a_peer_touch_only_devices_paired_here(book: DeviceBook) -> None:
    phone = book.pin(b"p" * 32, "phone", signal_url=None)
    laptop = book.pin(b"l" * 32, "laptop", signal_url=None)
    assert book.revoke_keys([b"p" * 32, b"z" * 32]) == [phone.device_id]
    assert book.get(phone.device_id).status is DeviceStatus.REVOKED
    assert book.get(laptop.device_id).status is DeviceStatus.APPROVED
    assert book.revoked_keys() == [b"p" * 32]
    assert book.revoke_keys([b"p" * 32]) == []  # already revoked


def test_a_rotated_device_pairing_fresh_is_named_by_its_first_key(book: DeviceBook) -> None:
    record = book.pin(b"n" * 32, "tablet", signal_url=None, root_key=b"r" * 32)
    assert record.device_id == device_id_of(b"r" * 32) and record.public_key == b"n" * 32
