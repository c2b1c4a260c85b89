"""The Markdown helpers every report uses: a table's lines and a number that may be missing."""
from __future__ import annotations

import math
from collections.abc import Sequence


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    """``value`` formatted with ``spec`` and ``unit``; a dash for a missing or non-finite value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:{spec}}{unit}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> list[str]:
    """A Markdown table's lines; ``align`` holds one ``---:`` / ``:---`` per column."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
