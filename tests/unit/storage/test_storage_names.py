"""sanitize_relpath, numbered_name, validate_id: examples for every rule, then properties."""

from __future__ import annotations

import os
import tempfile
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from daemon.storage.names import (
    MAX_COMPONENT_BYTES,
    UnsafeName,
    numbered_name,
    sanitize_relpath,
    validate_id,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", ("a.txt",)),
        ("dir/sub/a.txt", ("dir", "sub", "a.txt")),
        ("../x", ("x",)),
        ("/etc/passwd", ("etc", "passwd")),
        ("a/../../b", ("a", "b")),
        ("./a/./b/", ("a", "b")),
        ("a\\b\\..\\c", ("a", "b", "c")),
        ("C:\\Windows\\x", ("C_", "Windows", "x")),
        ("a\x00b", ("a_b",)),
        ("a\x7fb\x85c\x1bd", ("a_b_c_d",)),
        ('a<b>c:d"e|f?g*h', ("a_b_c_d_e_f_g_h",)),
        ("trailing. . ", ("trailing",)),
        ("name.", ("name",)),
        ("CON", ("CON_",)),
        ("con.txt", ("con_.txt",)),
        ("Lpt9.tar.gz", ("Lpt9_.tar.gz",)),
        ("COM\u00b9", ("COM\u00b9_",)),
        ("console", ("console",)),
        ("．．/x", ("__", "x")),
        ("．/x", ("_", "x")),
        ("a∕..∕b", ("a_.._b",)),
        ("a⁄..⁄b", ("a_.._b",)),
        ("..／..／etc", (".._.._etc",)),
        ("a＼b", ("a_b",)),
        ("℀", ("_",)),
        ("evil\u202egpj.exe", ("evil_gpj.exe",)),
        (".doorstep/partial/x", (".doorstep_", "partial", "x")),
        (".DoorStep", (".DoorStep_",)),
        ("a/.doorstep", ("a", ".doorstep")),
        ("e\u0301", ("\u00e9",)),  # NFC
        ("\ud800x", ("_x",)),  # lone surrogate from JSON
        (".hidden", (".hidden",)),
    ],
)
def test_rules(name: str, expected: tuple[str, ...]) -> None:
    assert sanitize_relpath(name) == expected


@pytest.mark.parametrize("name", ["", "/", "..", "../..", "./.", " . ", "...", "\\", "/../"])
def test_nothing_usable(name: str) -> None:
    with pytest.raises(UnsafeName, match="nothing usable"):
        sanitize_relpath(name)


def test_limits() -> None:
    with pytest.raises(UnsafeName, match="too deep"):
        sanitize_relpath("/".join(["d"] * 65))
    assert len(sanitize_relpath("/".join(["d"] * 64))) == 64
    with pytest.raises(UnsafeName, match="too long"):
        sanitize_relpath("/".join(["x" * 200] * 21))
    with pytest.raises(UnsafeName, match="too long"):
        sanitize_relpath("a" * 40_000)
    with pytest.raises(UnsafeName, match="str"):
        sanitize_relpath(b"a")  # type: ignore[arg-type]


def test_long_component_is_cut_keeping_a_short_extension() -> None:
    (long_txt,) = sanitize_relpath("x" * 300 + ".txt")
    assert len(long_txt.encode()) == MAX_COMPONENT_BYTES and long_txt.endswith("x.txt")
    (long_ext,) = sanitize_relpath("x" * 250 + "." + "y" * 60)
    assert len(long_ext.encode()) == MAX_COMPONENT_BYTES and long_ext.startswith("x" * 250)
    (multibyte,) = sanitize_relpath("é" * 200)  # 2 bytes each: cut on a character boundary
    assert multibyte == "é" * 127
    (combining,) = sanitize_relpath("a" + "\u0301" * 300)  # never ends in a dangling mark
    assert len(combining.encode()) <= MAX_COMPONENT_BYTES and combining == "á"


def test_numbered_name() -> None:
    assert numbered_name("a.txt", 0) == "a.txt"
    assert numbered_name("a.txt", 1) == "a (1).txt"
    assert numbered_name("x.tar.gz", 2) == "x (2).tar.gz"
    assert numbered_name(".bashrc", 1) == ".bashrc (1)"
    assert numbered_name("noext", 3) == "noext (3)"
    assert numbered_name("photos.2024", 1, is_dir=True) == "photos.2024 (1)"
    long = numbered_name("x" * 251 + ".txt", 123)
    assert len(long.encode()) == MAX_COMPONENT_BYTES and long.endswith(" (123).txt")
    with pytest.raises(ValueError):
        numbered_name("a", -1)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a.b", "x" * 65, "é", "a b", None])
def test_validate_id_rejects(bad: object) -> None:
    with pytest.raises(UnsafeName, match="transfer id"):
        validate_id(bad, what="transfer id")  # type: ignore[arg-type]


def test_validate_id_accepts() -> None:
    assert validate_id("Abc_09-x" * 8) == "Abc_09-x" * 8


# -- properties --------------------------------------------------------------------------------

_SPECIAL = list('/\\.  \x00\x01\x1f\x7f\x85\u202e<>:"|?*') + [
    "..",
    "．",
    "∕",
    "⁄",
    "／",
    "＼",
    "‥",
    "…",
    "﹒",
    "\u0301",
    "CON",
    "nul",
    ".doorstep",
    "é",
    "𝒳",
    "\ufeff",
    "℀",
]
_token = st.one_of(
    st.characters(exclude_categories=("Cs",)),
    st.sampled_from(_SPECIAL),
    st.text(max_size=5),
)
_hostile_text = (
    st.lists(_token, max_size=40).map("".join)
    | st.lists(
        st.lists(st.sampled_from(_SPECIAL + ["a", "b"]), max_size=6).map("".join), max_size=8
    ).map("/".join)
    | st.text(alphabet=st.sampled_from(["a", "é", "𝒳", ".", " "]), min_size=200, max_size=400)
)

_ROOT = os.path.realpath(tempfile.gettempdir())


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_text)
@example("../x")
@example("a/../../b")
@example("．．/．．/etc/passwd")
@example("a∕..∕b")
def test_result_is_always_safe(name: str) -> None:
    try:
        parts = sanitize_relpath(name)
    except UnsafeName:
        return
    assert parts
    for part in parts:
        assert part and part not in (".", "..")
        assert "/" not in part and "\\" not in part and "\x00" not in part
        assert unicodedata.normalize("NFC", part) == part
        assert len(part.encode()) <= MAX_COMPONENT_BYTES
        folded = unicodedata.normalize("NFKC", part)
        assert "/" not in folded and "\\" not in folded and folded.strip(". ") != ""
        assert not part.endswith((".", " "))
    joined = os.path.realpath(os.path.join(_ROOT, *parts))
    assert os.path.commonpath([_ROOT, joined]) == _ROOT and joined != _ROOT
    assert sanitize_relpath("/".join(parts)) == parts  # idempotent


@settings(max_examples=200)
@given(st.text(alphabet=st.characters() | st.characters(categories=["Cs"]), max_size=40))
def test_surrogates_never_crash(name: str) -> None:
    try:
        parts = sanitize_relpath(name)
    except UnsafeName:
        return
    "/".join(parts).encode()  # always encodable: usable as a file name
