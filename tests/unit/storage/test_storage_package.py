"""Package boundaries: storage imports only the standard library, declares ``__all__`` in every
module, and re-exports its public names explicitly (``X as X``) from ``daemon.storage``."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import daemon.storage

PACKAGE_DIR = Path(daemon.storage.__file__).parent
MODULES = sorted(PACKAGE_DIR.glob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(level, module) for each import in ``path`` (level > 0: relative)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_imports_only_stdlib_and_itself() -> None:
    for path in MODULES:
        for level, module in imported_modules(path):
            if level:
                assert level == 1, f"{path.name} reaches outside storage: {module}"
                continue
            top = module.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", f"{path.name}: {module}"
            assert not module.startswith("daemon"), f"{path.name} imports {module}"


def test_every_module_declares_all() -> None:
    for path in MODULES:
        module = importlib.import_module(
            f"daemon.storage.{path.stem}" if path.stem != "__init__" else "daemon.storage"
        )
        assert isinstance(getattr(module, "__all__", None), list), path.name
        for name in module.__all__:
            assert hasattr(module, name), f"{path.name}: __all__ lists missing {name}"


def test_facade_reexports_explicitly() -> None:
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text())
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert alias.asname == alias.name, f"re-export {alias.name} as itself"
                exported.add(alias.name)
    assert exported == set(daemon.storage.__all__)
