"""Byte ranges for inbox downloads (RFC 9110) and the Content-Disposition of a download."""

from __future__ import annotations

import pytest

from control_api.ranges import ByteRange, Unsatisfiable, content_disposition, parse_range


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 100, None),
    ("", 100, None),
    ("bytes=0-9", 100, ByteRange(0, 9, 100)),
    ("bytes=90-", 100, ByteRange(90, 99, 100)),
    ("bytes=90-500", 100, ByteRange(90, 99, 100)),
    ("bytes=-10", 100, ByteRange(90, 99, 100)),
    ("bytes=-500", 100, ByteRange(0, 99, 100)),
    ("bytes=5-5", 100, ByteRange(5, 5, 100)),
    ("bytes = 5-5", 100, None),  # not the grammar: ignored
    ("bytes=0-0,5-9", 100, None),  # several ranges: the whole file
    ("items=0-9", 100, None),
    ("bytes=9-5", 100, None),  # invalid: ignored
    ("bytes=-", 100, None),
    ("bytes=a-b", 100, None),
])
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100),
                                              ("bytes=0-", 0), ("bytes=-5", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_range_headers() -> None:
    wanted = parse_range("bytes=10-19", 100)
    assert wanted is not None and wanted.length == 10 and wanted.content_range() == "bytes 10-19/100"


@pytest.mark.parametrize(("name", "expected"), [
    ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
    ("résumé 2024.txt", "attachment; filename=\"resume 2024.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.txt"),
    ('a"b\\c;d.txt', "attachment; filename=\"a_b_c_d.txt\"; filename*=UTF-8''a%22b%5Cc%3Bd.txt"),
    ("日本.txt", "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
    ("new\nline", "attachment; filename=\"new_line\"; filename*=UTF-8''new%0Aline"),
])
def test_content_disposition(name: str, expected: str) -> None:
    assert content_disposition(name) == expected
