"""Plain-text tables that line up with Chinese text (wide characters take two columns)."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

# Bidi controls (LRE, RLE, PDF, LRO, RLO; LRI, RLI, FSI, PDI; LRM, RLM, ALM). The rules refuse
# control characters in names, not these (format characters): a unit or campaign named with
# U+202E made a terminal that does bidi draw the rest of its line right to left, the figures
# after the name too. Text output writes them out; --json and CSV keep names as they are.
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
# C0 and C1 controls and DEL: an id or value the hub quotes back in a refusal may hold ESC
# [2J (clear the screen), a title or cursor move, which a terminal obeys.
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
# LINE and PARAGRAPH SEPARATOR: not controls, but a pager, log viewer or editor breaks a line
# at them (and Python's splitlines does), splitting a row or a refusal where the hub's text had
# none.
_SEPARATORS = [0x2028, 0x2029]
_WRITTEN_OUT = {c: f"<U+{c:04X}>" for c in [*_CONTROLS, *_BIDI, *_SEPARATORS]}
_WRITTEN_OUT_BUT_LINES = {c: w for c, w in _WRITTEN_OUT.items() if c != ord("\n")}


def shown(text: str, lines: bool = False) -> str:
    """Return text from the hub (a name, an id, a reason) for a terminal: control characters
    and bidi controls written out (<U+001B>); with `lines`, a message's line breaks kept."""
    return text.translate(_WRITTEN_OUT_BUT_LINES if lines else _WRITTEN_OUT)


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, n: int, right: bool) -> str:
    gap = " " * max(0, n - width(text))
    return gap + text if right else text + gap


def render(
    headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None
) -> str:
    """Return a table; columns flagged in `right` (numbers) are right-aligned."""
    headers = [shown(h) for h in headers]
    cells = [[shown(str(c)) for c in row] for row in rows]
    widths = [max([width(h)] + [width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    right = right or [False] * len(headers)
    lines = ["  ".join(_pad(h, widths[i], right[i]) for i, h in enumerate(headers)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(_pad(c, widths[i], right[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(lines)


def percent(ratio: float) -> str:
    """Return a coverage ratio to 0.1%: only full prints 100.0% and only none 0.0% (2,000 of
    2,001 rounds to 100.0%, which reads as full coverage: it prints 99.9%). A half rounds up,
    as the dashboard's Math.round does: Python's round() took 1 of 16 (62.5 tenths) to 6.2%
    where the wall screen showed 6.3% for the same group."""
    tenths = math.floor(ratio * 1000 + 0.5)
    if 0 < ratio < 1:
        tenths = min(max(tenths, 1), 999)
    return f"{tenths / 10:.1f}%"
