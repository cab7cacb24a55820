"""A refusal's details short enough to reach the client.

gRPC sends them in the grpc-message trailer, percent-encoded, and a client reads at most
16 KiB of trailers: a refusal quoting a 20,000-character id reached it as RESOURCE_EXHAUSTED
"Stream removed", its status and field lost.
"""

from __future__ import annotations

from typing import NoReturn

import grpc

# Characters kept from each end: 900 characters, 4 bytes each at most in UTF-8 and 3 per
# byte percent-encoded, come to under 11 KiB.
HEAD, TAIL = 600, 300


def clipped(details: str) -> str:
    """Return details with the middle of an overlong one left out: the field leads it and
    what a client may give instead (known: ...) ends it."""
    if len(details) <= HEAD + TAIL:
        return details
    cut = len(details) - HEAD - TAIL
    return f"{details[:HEAD]}…[{cut} characters left out]…{details[-TAIL:]}"


def holds_nul(name: str, value: str) -> str:
    """Return why `value` is refused ("" when it is not): no id or name holds a NUL, and
    PostgreSQL refuses it in any text (an UNKNOWN or 500 where SQLite answered not found)."""
    return f"{name}: holds a NUL character, which no id or name does" if "\x00" in value else ""


def padded(name: str, value: str) -> str:
    """Return why `value` is refused ("" when it is not): ids, areas and metric names are
    exact keys, none with whitespace at either end. Trimmed on one surface and not on another,
    the same padded id was answered by the dashboard and unknown over gRPC."""
    if value == value.strip():
        return ""
    return f"{name}: {value!r} has whitespace at its start or end; ids and names are exact keys"


def unfit(name: str, value: str) -> str:
    """Return why a request's string `value` is refused before it is looked up ("": it is
    not): a NUL in it, or whitespace around it."""
    return holds_nul(name, value) or padded(name, value)


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, clipped(details))
    raise AssertionError("unreachable")  # abort raises
