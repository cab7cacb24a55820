"""The embedded log's index (`events.idx`): an open walks only the records after the prefix
it vouches for, and an index that does not match the log byte for byte is not used."""

from __future__ import annotations

from pathlib import Path

import pytest

from duhub.log import index
from duhub.log.base import LogCorrupted
from duhub.log.embedded import EmbeddedLog

N = index.MIN_RECORDS + 1_000


def items(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"k{i % 3}".encode(), f"value-{i}".encode()) for i in range(start, start + n)]


def written(d: Path, n: int = N) -> Path:
    log = EmbeddedLog(d)
    for i in range(0, n, 10_000):
        log.append(items(min(10_000, n - i), i))
    log.close()
    return d


def values(log: EmbeddedLog, offset: int, n: int) -> list[bytes]:
    return [r.value for r in log.read(0, offset, n)]


def test_a_closed_long_log_opens_from_its_index(tmp_path: Path) -> None:
    d = written(tmp_path)
    assert (d / EmbeddedLog.INDEX).exists()
    log = EmbeddedLog(d)
    try:
        assert log.walked == 0
        assert log.end_offsets() == {0: N}
        assert values(log, 0, 2) == [b"value-0", b"value-1"]
        assert values(log, N - 2, 5) == [f"value-{N - 2}".encode(), f"value-{N - 1}".encode()]
        assert log.append(items(1, N)) == [(0, N)]
        assert values(log, N, 1) == [f"value-{N}".encode()]
    finally:
        log.close()


def test_records_after_the_index_are_walked(tmp_path: Path) -> None:
    d = written(tmp_path)
    log = EmbeddedLog(d)
    log.append(items(10, N))
    # Killed: no close, so the index still covers only the first N records.
    log2 = EmbeddedLog(d)
    try:
        assert log2.walked == 10
        assert log2.end_offsets() == {0: N + 10}
        assert values(log2, N + 9, 1) == [f"value-{N + 9}".encode()]
    finally:
        log2.close()
        log.close()


def test_a_long_walk_on_open_writes_the_index(tmp_path: Path) -> None:
    d = written(tmp_path)
    (d / EmbeddedLog.INDEX).unlink()
    first = EmbeddedLog(d)  # never closed: the index must not wait for a clean close
    assert first.walked == N
    assert (d / EmbeddedLog.INDEX).exists()
    second = EmbeddedLog(d)
    try:
        assert second.walked == 0 and second.end_offsets() == {0: N}
    finally:
        second.close()
        first.close()


def test_a_changed_byte_in_the_indexed_prefix_still_stops_the_open(tmp_path: Path) -> None:
    d = written(tmp_path)
    path = d / EmbeddedLog.FILE
    data = bytearray(path.read_bytes())
    at = data.index(b"value-30000")
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorrupted, match="damaged"):
        EmbeddedLog(d)


def test_a_torn_tail_after_the_indexed_prefix_is_cut(tmp_path: Path) -> None:
    d = written(tmp_path)
    path = d / EmbeddedLog.FILE
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x12\x34")  # a frame header cut short
    log = EmbeddedLog(d)
    try:
        assert log.walked == 0 and log.end_offsets() == {0: N}
        assert log.append(items(1, N)) == [(0, N)]
    finally:
        log.close()


def test_a_log_shorter_than_its_index_is_walked_as_it_is(tmp_path: Path) -> None:
    d = written(tmp_path)
    keep = written(tmp_path / "short", 20_000)
    # The longer log's index beside a log that holds only its first 20,000 records.
    (keep / EmbeddedLog.INDEX).write_bytes((d / EmbeddedLog.INDEX).read_bytes())
    log = EmbeddedLog(keep)
    try:
        assert log.walked == 20_000 and log.end_offsets() == {0: 20_000}
    finally:
        log.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_a_damaged_index_is_not_used(tmp_path: Path, damage: str) -> None:
    d = written(tmp_path)
    idx = d / EmbeddedLog.INDEX
    data = bytearray(idx.read_bytes())
    if damage == "garbage":
        data = bytearray(b"not an index at all" * 10)
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[index.HEADER.size + 8 * 1234] ^= 0xFF  # one record's position
    idx.write_bytes(bytes(data))
    log = EmbeddedLog(d)
    try:
        assert log.walked == N and log.end_offsets() == {0: N}
        assert values(log, 1234, 1) == [b"value-1234"]
    finally:
        log.close()


def test_a_short_log_gets_no_index(tmp_path: Path) -> None:
    d = written(tmp_path, 1_000)
    assert not (d / EmbeddedLog.INDEX).exists()


KILLED_WRITING_THE_INDEX = """
import os, signal, sys
from duhub.log import index
from duhub.log.embedded import EmbeddedLog

real = index.write
def write_then_die(f, *args, **kw):
    real(f, *args, **kw)
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 half way through the index's save
index.write = write_then_die
EmbeddedLog(sys.argv[1])  # a long walk on open: it saves the index
"""


def test_an_index_save_killed_half_way_leaves_no_file_behind(tmp_path: Path) -> None:
    # A hub killed -9 while it wrote `events.idx` (on close, or after a long walk on open)
    # left its temporary file, `events.idx.PID.tmp`, in the data dir for good: as large as the
    # index (80 MB at 10M records), one more with each such kill.
    import subprocess
    import sys

    d = written(tmp_path)
    (d / EmbeddedLog.INDEX).unlink()  # the next open walks the log and saves the index
    done = subprocess.run([sys.executable, "-c", KILLED_WRITING_THE_INDEX, str(d)], check=False)
    assert done.returncode == -9
    assert list(d.glob("events.idx.*.tmp"))  # what the kill left
    assert not (d / EmbeddedLog.INDEX).exists()
    log = EmbeddedLog(d)  # walks the log again and, having walked far, saves its index
    try:
        assert log.end_offsets() == {0: N}
    finally:
        log.close()
    assert (d / EmbeddedLog.INDEX).exists()
    assert sorted(p.name for p in d.iterdir()) == [EmbeddedLog.INDEX, EmbeddedLog.FILE]
