"""HKDF against RFC 5869, the length-prefixed encoding, fingerprint canonicalisation, roles."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.crypto.kdf import (
    FINGERPRINT_ALGORITHMS,
    ROLES,
    canonical_fingerprint,
    check_role,
    hkdf_expand,
    hkdf_extract,
    hkdf_sha256,
    length_prefixed,
)

# RFC 5869 appendix A, test cases 1-3 (SHA-256): ikm, salt, info, length, prk, okm.
RFC5869_CASES = [
    pytest.param(
        bytes([0x0B] * 22),
        bytes(range(0x0D)),
        bytes(range(0xF0, 0xFA)),
        42,
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        id="case1-basic",
    ),
    pytest.param(
        bytes(range(0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
        id="case2-long",
    ),
    pytest.param(
        bytes([0x0B] * 22),
        b"",
        b"",
        42,
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        id="case3-empty-salt-info",
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "prk", "okm"), RFC5869_CASES)
def test_rfc5869_vectors(ikm: bytes, salt: bytes, info: bytes, length: int, prk: str, okm: str) -> None:
    assert hkdf_extract(salt, ikm).hex() == prk
    assert hkdf_expand(bytes.fromhex(prk), info, length).hex() == okm


def test_hkdf_sha256_matches_rfc5869_case3() -> None:
    # Case 3 has empty info, which is the only RFC case whose info is a (UTF-8) purpose string.
    okm = hkdf_sha256(bytes([0x0B] * 22), purpose="", length=42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_hkdf_sha256_uses_purpose_as_utf8_info_and_salt() -> None:
    key, salt = b"k" * 32, b"salt"
    purpose = "doorstep/v1/é"
    expected = hkdf_expand(hkdf_extract(salt, key), purpose.encode("utf-8"), 32)
    assert hkdf_sha256(key, purpose=purpose, salt=salt) == expected
    # First block by hand: T(1) = HMAC(PRK, info || 0x01).
    prk = hmac.digest(salt, key, "sha256")
    assert expected == hmac.digest(prk, purpose.encode() + b"\x01", "sha256")


def test_hkdf_sha256_separates_purposes_salts_and_lengths() -> None:
    key = bytes(range(32))
    a = hkdf_sha256(key, purpose="doorstep/v1/a")
    assert len(a) == 32
    assert a != hkdf_sha256(key, purpose="doorstep/v1/b")
    assert a != hkdf_sha256(key, purpose="doorstep/v1/a", salt=b"x")
    assert a != hkdf_sha256(b"\xff" + key[1:], purpose="doorstep/v1/a")
    # HKDF output is a prefix-stable stream.
    assert hkdf_sha256(key, purpose="doorstep/v1/a", length=16) == a[:16]
    assert hkdf_sha256(key, purpose="doorstep/v1/a", length=100)[:32] == a


@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1])
def test_hkdf_rejects_bad_lengths(length: int) -> None:
    with pytest.raises(ValueError):
        hkdf_sha256(b"k", purpose="p", length=length)


def test_hkdf_maximum_length_and_short_prk() -> None:
    assert len(hkdf_sha256(b"k", purpose="p", length=255 * 32)) == 255 * 32
    with pytest.raises(ValueError):
        hkdf_expand(b"short", b"", 32)


def test_length_prefixed_exact_bytes() -> None:
    assert length_prefixed() == b""
    assert length_prefixed(b"", b"ab") == b"\x00\x00\x00\x00" + b"\x00\x00\x00\x02ab"
    mixed = length_prefixed(bytearray(b"x"), memoryview(b"yz"))  # type: ignore[arg-type]
    assert mixed == b"\x00\x00\x00\x01x\x00\x00\x00\x02yz"


@given(st.lists(st.binary(max_size=20), max_size=5), st.lists(st.binary(max_size=20), max_size=5))
def test_length_prefixed_is_injective(a: list[bytes], b: list[bytes]) -> None:
    assert (length_prefixed(*a) == length_prefixed(*b)) == (a == b)


SHA256_FP = "sha-256 " + ":".join(f"{i:02X}" for i in range(0xA0, 0xC0))


@pytest.mark.parametrize(
    "text",
    [
        SHA256_FP,
        SHA256_FP.lower(),
        SHA256_FP.upper(),
        "Sha-256 " + SHA256_FP.split()[1].lower(),
        "  " + SHA256_FP.replace(" ", "\t ") + "\n",
    ],
)
def test_canonical_fingerprint_normalises_case_and_whitespace(text: str) -> None:
    assert canonical_fingerprint(text) == SHA256_FP


@pytest.mark.parametrize(("algorithm", "size"), sorted(FINGERPRINT_ALGORITHMS.items()))
def test_canonical_fingerprint_accepts_each_algorithm(algorithm: str, size: int) -> None:
    hex_pairs = ":".join(["ab"] * size)
    assert canonical_fingerprint(f"{algorithm.upper()} {hex_pairs}") == f"{algorithm} {hex_pairs.upper()}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha-256",
        SHA256_FP.split()[1],
        "md5 " + ":".join(["AB"] * 16),
        "sha-1 " + ":".join(["AB"] * 20),
        "sha256 " + SHA256_FP.split()[1],
        "sha-256 " + ":".join(["AB"] * 31),
        "sha-256 " + ":".join(["AB"] * 33),
        "sha-384 " + ":".join(["AB"] * 32),
        "sha-256 " + ":".join(["AB"] * 31) + ":GG",
        "sha-256 " + ":".join(["AB"] * 31) + ":A",
        "sha-256 " + ":".join(["AB"] * 31) + ":ABC",
        "sha-256 " + ":".join(["AB"] * 32) + ":",
        "sha-256 " + "AB" * 32,
        "sha-256 " + "-".join(["AB"] * 32),
        "sha-256 " + ":".join(["+A"] * 32),
        "sha-256 " + ":".join(["٣٣"] * 32),
        SHA256_FP + " extra",
        "sha-256 " + ":".join(["AB"] * 16) + " " + ":".join(["AB"] * 16),
    ],
)
def test_canonical_fingerprint_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_fingerprint(text)


def test_canonical_fingerprint_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        canonical_fingerprint(SHA256_FP.encode())  # type: ignore[arg-type]


@given(
    st.sampled_from(sorted(FINGERPRINT_ALGORITHMS)),
    st.data(),
)
def test_canonical_fingerprint_property(algorithm: str, data: st.DataObject) -> None:
    size = FINGERPRINT_ALGORITHMS[algorithm]
    digest = data.draw(st.binary(min_size=size, max_size=size))
    upper = data.draw(st.lists(st.booleans(), min_size=size, max_size=size))
    pairs = [digest[i : i + 1].hex().upper() if up else digest[i : i + 1].hex() for i, up in enumerate(upper)]
    canonical = canonical_fingerprint(f"{algorithm.upper()} {':'.join(pairs)}")
    assert canonical == f"{algorithm} {digest.hex(':').upper()}"
    assert canonical_fingerprint(canonical) == canonical


def test_roles() -> None:
    assert ROLES == ("offerer", "answerer")
    assert check_role("offerer") == "offerer"
    assert check_role("answerer") == "answerer"
    for bad in ("", "Offerer", "host", "offerer "):
        with pytest.raises(ValueError):
            check_role(bad)

