"""Text read with errors="surrogateescape": a byte that is not UTF-8 comes through as
U+DC80..U+DCFF, which no decoded UTF-8 yields, so the line it is on can be named and the rest
read on (`duhub publish`'s events, the token file)."""

from __future__ import annotations

import re

_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def bad_byte(line: str) -> str:
    """Return where a line so read is not UTF-8 ("byte 0xd2 at column 3"; "" when it is)."""
    bad = _NOT_UTF8.search(line)
    if bad is None:
        return ""
    column = len(line[: bad.start()].encode("utf-8", "surrogateescape")) + 1
    return f"byte 0x{ord(bad.group()) - 0xDC00:02x} at column {column}"
