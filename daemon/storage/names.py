"""Turning names chosen by a peer into names that are safe to create under a root.

This module is pure (no filesystem access). ``sanitize_relpath`` is the only way a peer-supplied
path becomes path components in storage; ``numbered_name`` makes the ``name (1).ext`` variants used
to avoid overwriting; ``validate_id`` checks the transfer and share identifiers that storage uses
as folder names.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "UnsafeName",
    "sanitize_relpath",
    "numbered_name",
    "validate_id",
    "MAX_COMPONENT_BYTES",
    "MAX_COMPONENTS",
    "MAX_PATH_BYTES",
    "PRIVATE_DIR",
]

MAX_COMPONENT_BYTES = 255
"""Longest component, in UTF-8 bytes (ext4, btrfs, XFS and exFAT all allow 255)."""
MAX_COMPONENTS = 64
"""Deepest relative path accepted."""
MAX_PATH_BYTES = 4096
"""Longest '/'-joined relative path accepted, in UTF-8 bytes."""
PRIVATE_DIR = ".doorstep"
"""Storage's private folder at the top of a root (partial files live there)."""

_MAX_INPUT_CHARS = 32 * 1024  # refuse absurd input before doing any work on it
_MAX_EXT_BYTES = 16  # an extension longer than this is not kept when truncating

# Characters Windows refuses in names, replaced so files survive a copy to exFAT/NTFS/SMB.
_WINDOWS_INVALID = frozenset('<>:"|?*')
# Bidirectional embedding/override/isolate controls: they make "gpj.exe" display as "exe.jpg".
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Symbols that look like '/' or '\' without normalizing to them (from Unicode confusables.txt;
# letters and ideographs that merely resemble a slash, such as katakana NO, are left alone).
_SLASH_LOOKALIKES = frozenset(
    "\u1735\u2041\u2044\u2215\u2571\u27cb\u29f8"  # like '/'
    "\u2216\u2572\u27cd\u29f5\u29f9"  # like '\'
)
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{p}{d}" for p in ("COM", "LPT") for d in "123456789\u00b9\u00b2\u00b3"]
)
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_COMPOUND_EXTS = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz", ".tar.lzma")


class UnsafeName(ValueError):
    """A peer-supplied name (or an identifier) leaves nothing that is safe to use."""


def validate_id(value: str, *, what: str = "id") -> str:
    """Return ``value`` if it is a valid transfer or share id: ``[A-Za-z0-9_-]{1,64}``.

    Raises ``UnsafeName`` otherwise (the message names ``what``). Such ids are used directly as
    folder names, so nothing else (no dots, no separators, nothing empty) is let through.
    """
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise UnsafeName(f"invalid {what} {value!r}: expected 1-64 characters of [A-Za-z0-9_-]")
    return value


def sanitize_relpath(name: str) -> tuple[str, ...]:
    """Turn a peer-supplied relative path into safe path components.

    The result is never empty; each component is non-empty, is not '.' or '..', contains no '/',
    '\\' or NUL, is NFC, and is at most 255 UTF-8 bytes, so joining the components under a root
    can never leave it. The function is idempotent: sanitizing ``'/'.join(result)`` gives
    ``result``.

    Rules, in order:

    1. Lone surrogates (possible in text decoded from JSON) become '_'; the text is normalized to
       Unicode NFC.
    2. Both '/' and '\\' separate components; absolute paths are therefore relative
       (``/etc/passwd`` -> ``('etc', 'passwd')``).
    3. Components '', '.' and '..' are dropped, never resolved: ``../x`` -> ``('x',)``,
       ``a/../../b`` -> ``('a', 'b')``.
    4. In each component, control characters (C0 including NUL, DEL, C1), the characters Windows
       refuses (``<>:"|?*``) and the bidirectional override/isolate controls (U+202A-U+202E,
       U+2066-U+2069) become '_'.
    5. Slash look-alikes become '_': any character whose NFKC form contains '/' or '\\' (e.g.
       U+FF0F FULLWIDTH SOLIDUS) and symbols that merely look like one (U+2215 DIVISION SLASH,
       U+2044 FRACTION SLASH, ...). If the component's NFKC form consists only of dots and spaces
       (e.g. fullwidth '．．' -> '..', or a no-break space), its non-ASCII characters become '_'.
       So no later normalization (by a filesystem, a client, or a copy to another machine) can
       turn a component into a separator or a traversal.
    6. Trailing dots and spaces are stripped (Windows drops them silently); a component left
       empty is dropped.
    7. Windows reserved device names (CON, PRN, AUX, NUL, COM1-9, LPT1-9, also with superscript
       digits), compared case-insensitively on the part before the first dot, get '_' appended to
       that part: ``CON`` -> ``CON_``, ``con.txt`` -> ``con_.txt``.
    8. A component longer than 255 UTF-8 bytes is cut on a character boundary; an extension of at
       most 16 bytes is kept (``<long stem>.txt`` stays a ``.txt``). Rules 4-7 are re-applied.
    9. A first component equal to ``.doorstep`` (case-insensitively: it would alias storage's
       private folder on a case-insensitive filesystem) becomes ``.doorstep_``.

    Raises ``UnsafeName`` (a ``ValueError``) with a message saying why when: ``name`` is not a
    str; it is longer than 32 Ki characters; nothing usable remains; the result has more than
    64 components or more than 4096 UTF-8 bytes when '/'-joined.
    """
    if not isinstance(name, str):
        raise UnsafeName(f"a name must be a str, not {type(name).__name__}")
    if len(name) > _MAX_INPUT_CHARS:
        raise UnsafeName(f"name too long ({len(name)} characters)")
    text = "".join("_" if "\ud800" <= ch <= "\udfff" else ch for ch in name)
    text = unicodedata.normalize("NFC", text).replace("\\", "/")
    parts: list[str] = []
    for raw in text.split("/"):
        if raw in ("", ".", ".."):
            continue
        component = _clean(raw)
        limit = MAX_COMPONENT_BYTES
        while len(component.encode()) > MAX_COMPONENT_BYTES:  # re-cleaning may change length
            component = _clean(_truncate_keeping_ext(component, limit))
            limit -= 4
        if component:
            parts.append(component)
    if not parts:
        raise UnsafeName(f"nothing usable remains of the name {_preview(name)}")
    if parts[0].casefold() == PRIVATE_DIR:
        parts[0] += "_"
    if len(parts) > MAX_COMPONENTS:
        raise UnsafeName(f"path too deep ({len(parts)} components, at most {MAX_COMPONENTS})")
    total = len("/".join(parts).encode())
    if total > MAX_PATH_BYTES:
        raise UnsafeName(f"path too long ({total} bytes, at most {MAX_PATH_BYTES})")
    return tuple(parts)


def numbered_name(name: str, n: int, *, is_dir: bool = False) -> str:
    """Return the ``n``-th alternative for a sanitized component ``name`` (``n == 0``: ``name``).

    Files get the counter before the extension (``a.txt`` -> ``a (1).txt``, ``x.tar.gz`` ->
    ``x (1).tar.gz``, ``.bashrc`` -> ``.bashrc (1)``); directories after the whole name
    (``photos.2024`` -> ``photos.2024 (1)``). The stem is cut so the result stays within 255 UTF-8
    bytes. Raises ``ValueError`` if ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"counter must be >= 0, got {n}")
    if n == 0:
        return name
    stem, ext = (name, "") if is_dir else _split_ext(name)
    suffix = f" ({n}){ext}"
    room = MAX_COMPONENT_BYTES - len(suffix.encode())
    return _cut_bytes(stem, room) + suffix


def _clean(component: str) -> str:
    """Rules 4-7 (and NFC) for one component; returns '' when nothing is left."""
    chars = [
        "_"
        if (unicodedata.category(ch) == "Cc" or ch in _WINDOWS_INVALID or ch in _BIDI_CONTROLS)
        else ch
        for ch in unicodedata.normalize("NFC", component)
    ]
    chars = ["_" if _is_slash_like(ch) else ch for ch in chars]
    folded = unicodedata.normalize("NFKC", "".join(chars))
    if folded.strip(". ") == "":
        chars = ["_" if not ch.isascii() else ch for ch in chars]
    cleaned = "".join(chars).rstrip(". ")
    if not cleaned:
        return ""
    stem, dot, rest = cleaned.partition(".")
    if stem.rstrip(" ").upper() in _WINDOWS_RESERVED:
        cleaned = f"{stem}_{dot}{rest}"
    return cleaned


def _is_slash_like(ch: str) -> bool:
    if ch in _SLASH_LOOKALIKES:
        return True
    if ch.isascii():
        return False
    folded = unicodedata.normalize("NFKC", ch)
    return "/" in folded or "\\" in folded


def _split_ext(name: str) -> tuple[str, str]:
    """Split off a short extension (compound ``.tar.*`` included); leading-dot names have none."""
    lower = name.lower()
    for compound in _COMPOUND_EXTS:
        if lower.endswith(compound) and len(name) > len(compound):
            return name[: -len(compound)], name[-len(compound) :]
    dot = name.rfind(".")
    if dot <= 0 or len(name[dot:].encode()) > _MAX_EXT_BYTES:
        return name, ""
    return name[:dot], name[dot:]


def _truncate_keeping_ext(component: str, limit: int) -> str:
    stem, ext = _split_ext(component)
    if ext and stem:
        return _cut_bytes(stem, limit - len(ext.encode())) + ext
    return _cut_bytes(component, limit)


def _cut_bytes(text: str, limit: int) -> str:
    """Longest prefix of ``text`` within ``limit`` UTF-8 bytes, not ending in a combining mark."""
    data = text.encode()
    if len(data) <= limit:
        return text
    cut = data[: max(limit, 0)].decode(errors="ignore")
    while cut and unicodedata.combining(cut[-1]):
        cut = cut[:-1]
    return cut


def _preview(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")
