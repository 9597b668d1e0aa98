"""Sealed mailbox bundles: what opens, and every way a bundle must not."""

from __future__ import annotations

import hashlib
import json
import os

import nacl.signing
import pytest

from daemon.crypto.mailbox_seal import (
    CHUNK, ENVELOPE_SIZE, MAX_MANIFEST, BundleError, BundleSealer, OpenedBundle, open_manifest, read_envelope,
    sealed_size,
)

RECIPIENT = nacl.signing.SigningKey(b"\x01" * 32)
SENDER = nacl.signing.SigningKey(b"\x02" * 32)
OTHER = nacl.signing.SigningKey(b"\x03" * 32)


def _bundle(contents: list[bytes], *, recipient=RECIPIENT, piece: int = 10_000) -> tuple[bytes, list[bytes]]:
    sealer = BundleSealer(bytes(recipient.verify_key), sender_seed=bytes(SENDER))
    sealed = []
    for data in contents:
        file = sealer.file()
        out = [file.push(data[i:i + piece]) for i in range(0, len(data), piece)]
        sealed.append(b"".join(out) + file.finish())
    return sealer.manifest([f"file {n}.bin" for n in range(len(contents))]), sealed


def _open_all(bundle: OpenedBundle, sealed: list[bytes], piece: int = 7777) -> list[bytes]:
    out = []
    for index, data in enumerate(sealed):
        opener = bundle.opener(index)
        plain = b"".join(opener.push(data[i:i + piece]) for i in range(0, len(data), piece))
        opener.finish()
        out.append(plain)
    return out


@pytest.mark.parametrize("sizes", [[0], [1], [CHUNK - 1, CHUNK, CHUNK + 1], [3 * CHUNK + 5, 0, 2 * CHUNK]])
def test_round_trip(sizes: list[int]) -> None:
    contents = [os.urandom(n) for n in sizes]
    manifest, sealed = _bundle(contents)
    assert [len(s) for s in sealed] == [sealed_size(n) for n in sizes]
    bundle = open_manifest(manifest, bytes(RECIPIENT))
    assert bundle.sender_key == bytes(SENDER.verify_key)
    assert [(f.name, f.size, f.sha256) for f in bundle.files] == [
        (f"file {n}.bin", len(c), hashlib.sha256(c).hexdigest()) for n, c in enumerate(contents)]
    assert _open_all(bundle, sealed) == contents


def test_the_plaintext_and_its_names_are_not_in_the_bundle() -> None:
    data = b"the quarterly numbers, very secret " * 4000
    manifest, sealed = _bundle([data])
    everything = manifest + b"".join(sealed)
    assert b"quarterly" not in everything and b"file 0.bin" not in everything
    assert hashlib.sha256(data).hexdigest().encode() not in everything
    assert read_envelope(manifest).recipient_key == bytes(RECIPIENT.verify_key)


def test_wrong_key_is_refused() -> None:
    manifest, _ = _bundle([b"hello"])
    with pytest.raises(BundleError, match="another device's key"):
        open_manifest(manifest, bytes(OTHER))
    # The envelope names OTHER's key, but the key box inside is still sealed to RECIPIENT.
    forged = manifest[:6] + bytes(OTHER.verify_key) + manifest[38:]
    with pytest.raises(BundleError, match="does not open"):
        open_manifest(forged, bytes(OTHER))


def test_tampered_manifest_and_envelope_are_refused() -> None:
    manifest, _ = _bundle([b"hello"])
    for position in (ENVELOPE_SIZE - 1, ENVELOPE_SIZE + 30, len(manifest) - 1):
        tampered = bytearray(manifest)
        tampered[position] ^= 1
        with pytest.raises(BundleError):
            open_manifest(bytes(tampered), bytes(RECIPIENT))


def test_tampered_chunk_is_refused() -> None:
    manifest, [sealed] = _bundle([os.urandom(3 * CHUNK)])
    bundle = open_manifest(manifest, bytes(RECIPIENT))
    tampered = bytearray(sealed)
    tampered[24 + CHUNK + 40] ^= 0x80  # inside the second chunk
    with pytest.raises(BundleError, match="failed authentication"):
        _open_all(bundle, [bytes(tampered)])


def test_truncated_file_is_refused() -> None:
    manifest, [sealed] = _bundle([os.urandom(2 * CHUNK + 100)])
    bundle = open_manifest(manifest, bytes(RECIPIENT))
    for cut in (len(sealed) - 1, 24 + CHUNK + 17, 10, 0):
        opener = bundle.opener(0)
        opener.push(sealed[:cut])
        with pytest.raises(BundleError, match="truncated"):
            opener.finish()
    opener = bundle.opener(0)
    with pytest.raises(BundleError, match="more sealed bytes"):
        opener.push(sealed + b"x")


def test_truncated_manifest_is_refused() -> None:
    manifest, _ = _bundle([b"hello"])
    for cut in (len(manifest) - 1, ENVELOPE_SIZE + 30, ENVELOPE_SIZE, 50, 0):
        with pytest.raises(BundleError):
            open_manifest(manifest[:cut], bytes(RECIPIENT))


def test_reordered_chunks_are_refused() -> None:
    manifest, [sealed] = _bundle([os.urandom(3 * CHUNK + 1)])
    bundle = open_manifest(manifest, bytes(RECIPIENT))
    step = CHUNK + 17
    first, second = sealed[24:24 + step], sealed[24 + step:24 + 2 * step]
    swapped = sealed[:24] + second + first + sealed[24 + 2 * step:]
    with pytest.raises(BundleError, match="failed authentication"):
        _open_all(bundle, [swapped])


def test_swapped_files_are_refused() -> None:
    manifest, sealed = _bundle([b"a" * 100, b"b" * 100])
    bundle = open_manifest(manifest, bytes(RECIPIENT))
    with pytest.raises(BundleError):
        _open_all(bundle, [sealed[1], sealed[0]])


def test_a_file_from_another_bundle_is_refused() -> None:
    manifest, _ = _bundle([b"a" * 100])
    _, [foreign] = _bundle([b"a" * 100])
    with pytest.raises(BundleError):
        _open_all(open_manifest(manifest, bytes(RECIPIENT)), [foreign])


def test_oversized_manifest_is_refused_before_decrypting() -> None:
    manifest, _ = _bundle([b"hello"])
    with pytest.raises(BundleError, match="at most"):
        open_manifest(manifest + b"\0" * MAX_MANIFEST, bytes(RECIPIENT))
    sealer = BundleSealer(bytes(RECIPIENT.verify_key), sender_seed=bytes(SENDER))
    sealer.file().finish()
    with pytest.raises(ValueError, match="at most"):
        sealer.manifest(["x" * 4000 * 300])


def test_not_a_bundle() -> None:
    with pytest.raises(BundleError, match="not a doorstep mailbox bundle"):
        open_manifest(b"PK\x03\x04" + bytes(200), bytes(RECIPIENT))


def test_the_manifest_names_its_signer() -> None:
    """Anyone with the recipient's public key can seal a bundle; the signature names its maker."""
    sealer = BundleSealer(bytes(RECIPIENT.verify_key), sender_seed=bytes(OTHER))
    sealer.file().finish()
    assert open_manifest(sealer.manifest(["x"]), bytes(RECIPIENT)).sender_key == bytes(OTHER.verify_key)


def test_manifest_contents_are_checked(monkeypatch) -> None:
    sealer = BundleSealer(bytes(RECIPIENT.verify_key), sender_seed=bytes(SENDER))
    sealer.file().finish()
    real_dumps = json.dumps

    def bad_dumps(doc, **kwargs):
        doc["files"][0][1] = -1
        return real_dumps(doc, **kwargs)

    monkeypatch.setattr(json, "dumps", bad_dumps)
    manifest = sealer.manifest(["x"])
    monkeypatch.setattr(json, "dumps", real_dumps)
    with pytest.raises(BundleError, match="malformed file"):
        open_manifest(manifest, bytes(RECIPIENT))
