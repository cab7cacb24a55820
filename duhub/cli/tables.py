"""Plain-text tables that line up with Chinese text (wide characters take two columns)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, n: int, right: bool) -> str:
    gap = " " * max(0, n - width(text))
    return gap + text if right else text + gap


def render(
    headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None
) -> str:
    """Return a table; columns flagged in `right` (numbers) are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([width(h)] + [width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    right = right or [False] * len(headers)
    lines = ["  ".join(_pad(h, widths[i], right[i]) for i, h in enumerate(headers)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(_pad(c, widths[i], right[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(lines)


def percent(ratio: float) -> str:
    """Return a coverage ratio to 0.1%: only full prints 100.0% and only none 0.0% (2,000 of
    2,001 rounds to 100.0%, which reads as full coverage: it prints 99.9%)."""
    tenths = round(ratio * 1000)
    if 0 < ratio < 1:
        tenths = min(max(tenths, 1), 999)
    return f"{tenths / 10:.1f}%"
