"""A mailbox offer must be exactly a bundle's files, named for its recipient."""

from __future__ import annotations

import pytest

from daemon.runtime.mailbox import bundle_paths, mailbox_address, parse_bundle_paths

RECIPIENT = "abcdefghijklmnopqrst"


def test_round_trip() -> None:
    paths = bundle_paths(RECIPIENT, "0f" * 16, 3)
    assert paths == [f"mailbox/{RECIPIENT}/{'0f' * 16}/{name}"
                     for name in ("manifest.sealed", "0.sealed", "1.sealed", "2.sealed")]
    assert parse_bundle_paths(paths) == (RECIPIENT, "0f" * 16)
    assert mailbox_address(RECIPIENT) == f"mailbox-{RECIPIENT}"


@pytest.mark.parametrize("paths", [
    [],
    ["holiday.jpg"],
    [f"mailbox/{RECIPIENT}/b/manifest.sealed"],  # no file
    [f"mailbox/{RECIPIENT}/b/0.sealed", f"mailbox/{RECIPIENT}/b/manifest.sealed"],  # manifest not first
    [f"mailbox/{RECIPIENT}/b/manifest.sealed", f"mailbox/{RECIPIENT}/b/1.sealed"],  # a gap
    [f"mailbox/{RECIPIENT}/b/manifest.sealed", f"mailbox/{RECIPIENT}/c/0.sealed"],  # two bundles
    [f"mailbox/{RECIPIENT}/b/manifest.sealed", f"mailbox/{RECIPIENT}/b/0.sealed", "notes.txt"],
    ["mailbox/../../etc/manifest.sealed", "mailbox/../../etc/0.sealed"],
    ["mailbox/UPPERCASEISNOTANID0/b/manifest.sealed", "mailbox/UPPERCASEISNOTANID0/b/0.sealed"],
])
def test_anything_else_is_refused(paths: list[str]) -> None:
    with pytest.raises(ValueError, match="not a mailbox bundle"):
        parse_bundle_paths(paths)
