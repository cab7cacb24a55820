"""What identifies a record of the log beyond its offset: a hash of its key and value.

A read model keeps, per partition, the offset and hash of the last record it applied
(`log_positions.last_offset`, `last_hash`). Offsets alone cannot tell a log made again (a
topic deleted and made again, a broker that lost its data) that grew past the read model's
positions: its records sit at the same offsets. Their contents differ.
"""

from __future__ import annotations

import hashlib

# A record's place and hash: (offset, hash).
Mark = tuple[int, int]


def record_hash(key: bytes, value: bytes) -> int:
    """Return a 64-bit hash of a record's key and value, as a signed integer (a BIGINT):
    two records told apart at one offset of one partition, 2**-64 the chance to miss."""
    h = hashlib.sha256(len(key).to_bytes(4, "big"))
    h.update(key)
    h.update(value)
    return int.from_bytes(h.digest()[:8], "big", signed=True)
