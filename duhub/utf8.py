"""Text read with errors="surrogateescape": a byte that is not UTF-8 comes through as
U+DC80..U+DCFF, which no decoded UTF-8 yields, so the line it is on can be named and the rest
read on (`duhub publish`'s events, the token file)."""

from __future__ import annotations

import re

_NOT_UTF8 = re.compile("[\udc80-\udcff]")
# Byte order marks of the encodings Windows tools write instead of UTF-8, longest first (UTF-32
# LE's starts with UTF-16 LE's).
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def bad_byte(line: str) -> str:
    """Return where a line so read is not UTF-8 ("byte 0xd2 at column 3"; "" when it is)."""
    bad = _NOT_UTF8.search(line)
    if bad is None:
        return ""
    column = len(line[: bad.start()].encode("utf-8", "surrogateescape")) + 1
    return f"byte 0x{ord(bad.group()) - 0xDC00:02x} at column {column}"


def wide_encoding(head: bytes) -> str:
    """Return what a text starting with `head` is when its byte order mark says UTF-16 or
    UTF-32 ("UTF-16 (it starts with the byte order mark FF FE)"; "" otherwise): read as UTF-8,
    its 2- or 4-byte newlines split it at the wrong places, so no line of it can be named."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return f"{name} (it starts with the byte order mark {bom.hex(' ').upper()})"
    return ""
