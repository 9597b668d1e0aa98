"""Render nested statistics as Prometheus text.

Input: ``{"signaling": {"connections": 3, "joins_failed_total": 7}, ...}``. A key ending in
``_total`` is a counter, anything else a gauge; non-numeric values are skipped. A value that is a
mapping of labels, ``{"state": {"done": 2, "failed": 1}}``, becomes one labelled series per entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["render_prometheus"]

_NAME_RE = re.compile(r"[^a-zA-Z0-9_]")
_LABEL_VALUE_RE = re.compile(r'[\\"\n]')


def _name(*parts: str) -> str:
    return _NAME_RE.sub("_", "_".join(("doorstep", *parts)))


def _label_value(value: str) -> str:
    return _LABEL_VALUE_RE.sub(lambda m: {"\\": "\\\\", '"': '\\"', "\n": "\\n"}[m.group()], value)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    return None


def render_prometheus(stats: Mapping[str, Mapping[str, Any]]) -> str:
    """Prometheus text for ``stats`` (sections of named values); ends with a newline."""
    lines: list[str] = []
    for section, values in stats.items():
        for key, value in values.items():
            name = _name(section, key)
            kind = "counter" if key.endswith("_total") else "gauge"
            if isinstance(value, Mapping):
                label, series = next(iter(value.items())) if len(value) == 1 else (None, None)
                if label is None or not isinstance(series, Mapping):
                    continue
                lines.append(f"# TYPE {name} {kind}")
                for label_value, number in series.items():
                    if (n := _number(number)) is not None:
                        lines.append(f'{name}{{{label}="{_label_value(str(label_value))}"}} {n}')
            elif (n := _number(value)) is not None:
                lines += [f"# TYPE {name} {kind}", f"{name} {n}"]
    return "\n".join(lines) + "\n"
