"""The embedded log's index, kept beside it so that opening a long log need not walk it.

Opening the log finds the byte position of every record and checks every frame's checksum: a
Python loop of ~1.3–2 µs a record, 13–20 s for 10M events. The index file holds those
positions for a prefix of the log together with a CRC-32 of each 16 MiB of that prefix as it
was. Opening checks the prefix against those CRCs (zlib over the bytes, ~1 s for 10M events)
and walks only the records after it; any difference (a changed byte, a shorter file, another
log) and the index is not used: the whole log is walked as before, which names the damaged
record. So the index saves time and never decides what the log holds.

File: header (magic, version, records, prefix end, chunk size), the positions (u64 each), the
chunk CRCs (u32 each), then a CRC-32 of all that. Little-endian; written to a temporary file
and renamed, so a reader sees a whole index or none.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from array import array
from pathlib import Path
from typing import BinaryIO

MAGIC = b"DUHUBIDX"
VERSION = 1
HEADER = struct.Struct("<8sIQQI")  # magic, version, records, prefix end (bytes), chunk size
TRAILER = struct.Struct("<I")
CHUNK = 16 * 1024 * 1024
# Below this many records the walk is quick (~0.1 s): no index is written.
MIN_RECORDS = 50_000

# The positions are stored as the machine's array bytes: only where those are little-endian.
USABLE = sys.byteorder == "little" and array("Q").itemsize == 8 and array("I").itemsize == 4


def chunk_crcs(f: BinaryIO, end: int, chunk: int = CHUNK) -> array:
    """Return the CRC-32 of each `chunk` bytes of the open file `f` up to byte `end`."""
    out = array("I")
    pos = 0
    while pos < end:
        data = os.pread(f.fileno(), min(chunk, end - pos), pos)
        if not data:
            raise EOFError(f"the file ends at byte {pos}, before {end}")
        out.append(zlib.crc32(data))
        pos += len(data)
    return out


def _crc(header: bytes, positions: array, crcs: array) -> int:
    # Over the arrays' own memory: a 10M-record index is 80 MB, not to be copied.
    return zlib.crc32(memoryview(crcs), zlib.crc32(memoryview(positions), zlib.crc32(header)))


def write(f: BinaryIO, positions: array, end: int, crcs: array, chunk: int = CHUNK) -> None:
    """Write the index of `positions` (a prefix ending at byte `end`) to the open file `f`."""
    header = HEADER.pack(MAGIC, VERSION, len(positions), end, chunk)
    f.write(header)
    positions.tofile(f)
    crcs.tofile(f)
    f.write(TRAILER.pack(_crc(header, positions, crcs)))


def read(f: BinaryIO) -> tuple[array, int, array, int] | None:
    """Return (positions, prefix end, chunk CRCs, chunk size) from the open index file, or
    None for a file that is not a whole index of this version."""
    size = os.fstat(f.fileno()).st_size
    header = f.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    magic, version, count, end, chunk = HEADER.unpack(header)
    if magic != MAGIC or version != VERSION or chunk <= 0:
        return None
    n_chunks = -(-end // chunk)
    if size != HEADER.size + 8 * count + 4 * n_chunks + TRAILER.size:
        return None
    positions, crcs = array("Q"), array("I")
    try:  # straight into the arrays, no copy of the file in between
        positions.fromfile(f, count)
        crcs.fromfile(f, n_chunks)
    except EOFError:
        return None
    (crc,) = TRAILER.unpack(f.read(TRAILER.size))
    if crc != _crc(header, positions, crcs):
        return None
    return positions, end, crcs, chunk


def load(index_path: Path, log_file: BinaryIO) -> tuple[array, int] | None:
    """Return (positions, prefix end) from the index when the open log file still holds that
    prefix byte for byte; else None."""
    if not USABLE:
        return None
    try:
        with open(index_path, "rb") as f:
            found = read(f)
    except OSError:
        return None
    if found is None:
        return None
    positions, end, crcs, chunk = found
    if os.fstat(log_file.fileno()).st_size < end:
        return None
    try:
        if chunk_crcs(log_file, end, chunk) != crcs:
            return None
    except (OSError, EOFError):
        return None
    return positions, end


def save(index_path: Path, log_file: BinaryIO, positions: array, end: int) -> bool:
    """Write the index of the first `len(positions)` records (ending at byte `end`) of the
    open log file; return whether it was written (a read-only directory is no error). The
    caller holds the log's writer's lock."""
    if not USABLE or len(positions) < MIN_RECORDS:
        return False
    # Saved only under the writer's lock: another temporary file is a saver's killed half way.
    for stale in index_path.parent.glob(f"{index_path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = index_path.with_name(f"{index_path.name}.{os.getpid()}.tmp")
    try:
        crcs = chunk_crcs(log_file, end)
        with open(tmp, "wb") as f:
            write(f, positions, end, crcs)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, index_path)
        return True
    except (OSError, EOFError):
        tmp.unlink(missing_ok=True)
        return False
