"""argparse types shared by the commands: a refused value names why, and argparse the option."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(lo: int, hi: int, unit: str = "") -> Callable[[str], int]:
    """Return an argparse type taking a whole number lo … hi (of `unit`, if given)."""
    of = f" of {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number{of}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not between {lo} and {hi}")
        return value

    return parse
