"""The word list is fixed protocol output: its size, shape and exact contents are pinned."""

from __future__ import annotations

import hashlib
import itertools
import re

from daemon.crypto.words import WORDS

# Any edit or reordering changes what existing paired devices display; update only on purpose.
WORDS_SHA256 = "248de4a82ddf28a6d4423795f60b76c4f5b600cbb6ccc79ca1658c8c4387db07"


def within_one_edit(a: str, b: str) -> bool:
    """True if ``a`` and ``b`` differ by at most one substitution, insertion or deletion."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def test_count_and_type() -> None:
    assert isinstance(WORDS, tuple)
    assert len(WORDS) == 256


def test_unique() -> None:
    assert len(set(WORDS)) == 256


def test_charset_and_length() -> None:
    for word in WORDS:
        assert re.fullmatch(r"[a-z]{3,7}", word), word


def test_sorted() -> None:
    assert list(WORDS) == sorted(WORDS)


def test_no_two_words_one_edit_apart() -> None:
    close = [(a, b) for a, b in itertools.combinations(WORDS, 2) if within_one_edit(a, b)]
    assert close == []


def test_within_one_edit_helper() -> None:
    assert within_one_edit("cat", "bat")
    assert within_one_edit("cat", "cart")
    assert within_one_edit("cart", "cat")
    assert not within_one_edit("cat", "dog")
    assert not within_one_edit("cat", "cater")


def test_contents_pinned() -> None:
    assert hashlib.sha256("\n".join(WORDS).encode()).hexdigest() == WORDS_SHA256
