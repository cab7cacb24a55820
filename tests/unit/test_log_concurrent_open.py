"""Opening the embedded log while another process appends to it (`duhub replay` beside a
running hub, a reader following a writer) changes nothing the writer acknowledged.

Before, an open that met the writer's append in progress took it for a torn tail and cut it:
acknowledged records were lost and the writer's later offsets pointed at the wrong bytes."""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import time
import zlib
from pathlib import Path

from duhub.log.base import LogCorrupted
from duhub.log.embedded import EmbeddedLog

HEADER = struct.Struct("<II")


def value(offset: int) -> bytes:
    return b"%08d" % offset * 200  # ~1.6 KB: a batch of 20 spans pages, as real ones do


def frame(key: bytes, val: bytes) -> bytes:
    body = struct.pack("<H", len(key)) + key + val
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def _writer(d: str, stop, acked) -> None:  # type: ignore[no-untyped-def]
    log = EmbeddedLog(d)
    n = 0
    while not stop.is_set():
        log.append([(b"k", value(n + i)) for i in range(20)])
        n += 20
        acked.value = n
    log.close()


def _opener(d: str, stop, opens, errors) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        try:
            EmbeddedLog(d).close()
            with opens.get_lock():
                opens.value += 1
        except LogCorrupted as e:
            with errors.get_lock():
                errors.value += 1
            print(e)


def test_opening_beside_a_writer_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    d = str(tmp_path / "log")
    # Spawned, not forked: pytest has gRPC and HTTP threads alive by now, and a forked child
    # can block forever on a lock one of them held at the fork.
    ctx = mp.get_context("spawn")
    stop, acked = ctx.Event(), ctx.Value("q", 0)
    opens, errors = ctx.Value("q", 0), ctx.Value("q", 0)
    # Daemons: a stuck child is killed below, never joined without a bound at exit.
    writer = ctx.Process(target=_writer, args=(d, stop, acked), daemon=True)
    openers = [
        ctx.Process(target=_opener, args=(d, stop, opens, errors), daemon=True) for _ in range(2)
    ]
    try:
        writer.start()
        deadline = time.monotonic() + 60
        while acked.value == 0 and time.monotonic() < deadline:  # the log is there, and growing
            time.sleep(0.05)
        assert acked.value > 0, f"the writer appended nothing in 60 s (exit code {writer.exitcode})"
        for p in openers:
            p.start()
        # Opens counted, not a time: at a load of ~20 the two openers made 22 opens in 3 s,
        # 133 in another run, and the writer's log grows under them all the while.
        time.sleep(3)
        deadline = time.monotonic() + 60
        while opens.value < 10 and errors.value == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for p in (writer, *openers):
            p.join(30)
        assert [p.exitcode for p in (writer, *openers)] == [0, 0, 0]
    finally:
        stop.set()
        for p in (writer, *openers):
            if p.is_alive():
                p.kill()
                p.join(5)
    assert opens.value >= 10 and errors.value == 0  # sound logs are not called damaged
    log = EmbeddedLog(d)
    try:
        n = log.end_offsets()[0]
        assert n == acked.value
        for at in range(0, n, 5000):
            assert all(r.value == value(r.offset) for r in log.read(0, at, 5000)), at
    finally:
        log.close()


def test_an_append_in_progress_is_left_to_its_writer(tmp_path: Path) -> None:
    writer = EmbeddedLog(tmp_path)
    writer.append([(b"k", value(0)), (b"k", value(1))])  # the writer's lock is now held
    path = tmp_path / EmbeddedLog.FILE
    whole = path.stat().st_size
    late = frame(b"k", value(2))
    with open(path, "ab") as f:  # the first half of the writer's next frame, as a reader sees it
        f.write(late[:100])
    reader = EmbeddedLog(tmp_path)
    try:
        assert path.stat().st_size == whole + 100  # not cut
        assert reader.end_offsets() == {0: 2}
        with open(path, "ab") as f:
            f.write(late[100:])
        assert reader.end_offsets() == {0: 3}
        assert [r.value for r in reader.read(0, 2, 1)] == [value(2)]
    finally:
        reader.close()
        writer.close()


def test_a_new_writer_cuts_a_torn_tail_left_after_it_opened(tmp_path: Path) -> None:
    first = EmbeddedLog(tmp_path)
    first.append([(b"k", value(0))])
    first.close()
    log = EmbeddedLog(tmp_path)  # opened while the tail is sound
    path = tmp_path / EmbeddedLog.FILE
    with open(path, "ab") as f:  # then another writer started, wrote half a frame and died
        f.write(frame(b"k", value(99))[:50])
        os.fsync(f.fileno())
    assert log.append([(b"k", value(1))]) == [(0, 1)]
    log.close()
    again = EmbeddedLog(tmp_path)
    try:
        assert [r.value for r in again.read(0, 0, 10)] == [value(0), value(1)]
    finally:
        again.close()
