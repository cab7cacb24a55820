"""argparse types shared by the commands: a refused value names why, and argparse the option."""

from __future__ import annotations

import argparse
import math
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


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, finite and 0 or more (nan passed every "longer
    than?" test as false: `--retry-for nan` retried without end)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds, 0 or more")
    return value
