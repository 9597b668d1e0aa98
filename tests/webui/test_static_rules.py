"""Rules the web UI's source keeps, checked without a browser: strings reach the DOM only as text
(no HTML sinks, no eval), the page has no inline script or style for the CSP to allow, and
everything it loads comes from the appliance (no CDN, no third-party code)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from control_api.web import WEB_UI_DIR

VENDOR = WEB_UI_DIR / "vendor"
SOURCES = sorted(p for p in WEB_UI_DIR.rglob("*.js") if VENDOR not in p.parents)
VENDORED = sorted(VENDOR.rglob("*.js"))
HTML_SINKS = re.compile(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\s*\(|new Function\b"
                        r"|createContextualFragment|\bsrcdoc\b|DOMParser")


def test_there_are_sources_to_check() -> None:
    assert (WEB_UI_DIR / "index.html").is_file() and len(SOURCES) >= 10


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(WEB_UI_DIR)))
def test_no_html_sinks_and_no_foreign_imports(source: Path) -> None:
    text = source.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    assert not HTML_SINKS.search(code), f"{source.name} writes HTML or evaluates code"
    for module in re.findall(r"^\s*import\b[^'\"]*['\"]([^'\"]+)['\"]", code, flags=re.M):
        assert module.startswith("./") or module.startswith("../"), f"{source.name} imports {module!r}"
    assert "http://" not in code and "https://" not in code, f"{source.name} names a foreign URL"


def test_the_page_loads_only_its_own_files_and_has_no_inline_code() -> None:
    html = (WEB_UI_DIR / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="/js/main.js">']
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "no inline event handlers"
    for url in re.findall(r"(?:src|href)=\"([^\"]+)\"", html):
        assert url.startswith(("/", "#")), url


def test_third_party_code_is_exactly_what_vendor_json_pins_and_writes_no_html() -> None:
    """web_ui/vendor/ is filled by scripts/fetch-web-deps from the npm registry (integrity-checked)."""
    manifest = json.loads((WEB_UI_DIR / "vendor.json").read_text())
    expected = {f"{p['into']}/{name}" for p in manifest["packages"] for name in p["files"]}
    present = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert present == expected, "run scripts/fetch-web-deps (make does)"
    for package in manifest["packages"]:
        assert (VENDOR / package["into"] / ".integrity").read_text() == package["integrity"]
    assert VENDORED, "no third-party code fetched"
    for source in VENDORED:
        assert not HTML_SINKS.search(source.read_text()), f"{source.name} writes HTML or evaluates code"
