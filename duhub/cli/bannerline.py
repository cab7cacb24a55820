"""One line of a server's start-up banner: `  label:` padded to one column, then the value.

`duhub up` and every `duhub serve` service print these lines (where to look, how the server is
secured, which build runs); operators and scripts read them, so they line up the same in all.
"""

from __future__ import annotations

# The value's column: the widest label, "gRPC (ingest + query):", and two spaces.
LABEL_WIDTH = 24


def banner_line(label: str, value: str) -> str:
    """Return `label` and `value` as one banner line, the value in the banner's column."""
    return f"  {label + ':':<{LABEL_WIDTH}}{value}"
