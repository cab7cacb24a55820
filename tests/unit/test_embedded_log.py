"""The embedded log: offsets, durability across reopen, torn tails cut, corruption refused."""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path

import pytest

from duhub.log import embedded
from duhub.log.base import LogCorrupted
from duhub.log.embedded import EmbeddedLog

HEADER = struct.Struct("<II")  # the documented frame: u32 body length | u32 CRC-32 of body


def items(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [
        (f"k{i % 3}".encode(), f"value-{i}".encode() * (i % 5 + 1)) for i in range(start, start + n)
    ]


def contents(log: EmbeddedLog) -> list[tuple[int, bytes, bytes]]:
    return [(r.offset, r.key, r.value) for r in log.read(0, 0, 1_000_000)]


def frame(key: bytes, value: bytes) -> bytes:
    body = struct.pack("<H", len(key)) + key + value
    return HEADER.pack(len(body), zlib.crc32(body)) + body


@pytest.fixture(params=[embedded.RECOVER_CHUNK, 7, 61], ids=["chunk16M", "chunk7", "chunk61"])
def log_dir(tmp_path: Path, request, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    # Opening reads the file in chunks: frames straddling chunk ends must index the same.
    monkeypatch.setattr(embedded, "RECOVER_CHUNK", request.param)
    return tmp_path / "log"


def test_append_read_and_offsets(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    assert log.partitions() == [0]
    assert log.end_offsets() == {0: 0}
    assert log.read(0, 0, 10) == []
    first = items(3)
    assert log.append(first) == [(0, 0), (0, 1), (0, 2)]
    assert log.append(items(2, 3)) == [(0, 3), (0, 4)]
    assert log.append([]) == []
    assert log.end_offsets() == {0: 5}
    every = items(5)
    assert contents(log) == [(i, k, v) for i, (k, v) in enumerate(every)]
    assert [(r.offset, r.value) for r in log.read(0, 2, 2)] == [(2, every[2][1]), (3, every[3][1])]
    assert [r.offset for r in log.read(0, 4, 100)] == [4]
    assert log.read(0, 5, 10) == []
    assert all(r.partition == 0 for r in log.read(0, 0, 10))
    with pytest.raises(ValueError, match="partition"):
        log.read(1, 0, 10)
    log.close()
    with pytest.raises(RuntimeError):
        log.append(items(1))


def test_empty_key_and_value_and_large_value(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    big = bytes(range(256)) * 4096
    log.append([(b"", b""), (b"k", big), (b"\x00\xff", b"\n")])
    log.close()
    again = EmbeddedLog(log_dir)
    assert contents(again) == [(0, b"", b""), (1, b"k", big), (2, b"\x00\xff", b"\n")]
    again.close()


def test_reopen_keeps_records_and_continues_offsets(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    log.append(items(4))
    before = contents(log)
    log.close()
    log = EmbeddedLog(log_dir)
    assert contents(log) == before
    assert log.end_offsets() == {0: 4}
    assert log.append(items(1, 4)) == [(0, 4)]
    log.close()
    log = EmbeddedLog(log_dir)
    assert contents(log) == [(i, k, v) for i, (k, v) in enumerate(items(5))]
    log.close()


@pytest.mark.parametrize("cut", [1, 3, 8, 9])
def test_torn_tail_is_cut_and_earlier_records_survive(log_dir: Path, cut: int) -> None:
    log = EmbeddedLog(log_dir)
    log.append(items(3))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # the last frame was being written when the power went
    log = EmbeddedLog(log_dir)
    assert contents(log) == [(i, k, v) for i, (k, v) in enumerate(items(2))]
    assert path.stat().st_size == len(data) - len(frame(*items(3)[2]))
    # What was cut is kept beside the log, named by where it lay.
    kept = log_dir / f"{EmbeddedLog.FILE}.cut-at-{path.stat().st_size}"
    assert kept.read_bytes() == data[path.stat().st_size : -cut]
    # The log goes on from the cut: the next record takes offset 2 and survives a reopen.
    assert log.append([(b"k", b"after")]) == [(0, 2)]
    log.close()
    log = EmbeddedLog(log_dir)
    assert contents(log)[-1] == (2, b"k", b"after")
    log.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x01",
        b"\x00\x00\x00",
        b"\xff" * 7,
        b"\xff" * 40,  # a length far beyond the file
        HEADER.pack(5, 0) + b"12345",  # a whole frame whose checksum fails, at the very end
        frame(b"k", b"partial")[:-2],  # a frame cut short
    ],
)
def test_garbage_after_the_last_record_is_cut(log_dir: Path, garbage: bytes) -> None:
    log = EmbeddedLog(log_dir)
    log.append(items(2))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(garbage)
    log = EmbeddedLog(log_dir)
    assert contents(log) == [(i, k, v) for i, (k, v) in enumerate(items(2))]
    assert path.stat().st_size == size
    log.close()


def test_corrupted_middle_record_raises(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    log.append(items(3))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    data = bytearray(path.read_bytes())
    first = len(frame(*items(1)[0]))
    data[first + HEADER.size + 4] ^= 0x40  # a flipped bit in the second record's body
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorrupted):
        EmbeddedLog(log_dir)
    assert path.read_bytes() == bytes(data)  # nothing was cut or rewritten


def test_corrupted_first_checksum_raises(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    log.append(items(2))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    data = bytearray(path.read_bytes())
    data[4] ^= 0x01  # the first record's stored CRC
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorrupted):
        EmbeddedLog(log_dir)


def test_frame_format_is_the_documented_one(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    log.append([(b"420581", b"payload"), (b"", b"x")])
    log.close()
    assert (log_dir / EmbeddedLog.FILE).read_bytes() == frame(b"420581", b"payload") + frame(
        b"", b"x"
    )


def test_wait_wakes_on_append(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    assert log.wait({0: 0}, 0.01) is False
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(log.wait({0: 0}, 5.0)))
    t.start()
    log.append(items(1))
    t.join(5)
    assert woke == [True]
    assert log.wait({0: 0}, 0.01) is True
    assert log.wait({0: 1}, 0.01) is False
    log.close()


def test_concurrent_appends_get_distinct_offsets(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    got: list[list[tuple[int, int]]] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(20):
            where = log.append([(b"w", f"{w}-{i}-a".encode()), (b"w", f"{w}-{i}-b".encode())])
            with lock:
                got.append(where)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    offsets = sorted(o for where in got for _, o in where)
    assert offsets == list(range(160))
    # Each append's records are adjacent and in order.
    assert all(b[1] == a[1] + 1 for a, b in got)
    by_offset = {r.offset: r.value for r in log.read(0, 0, 1000)}
    for a, b in got:
        assert by_offset[a[1]].endswith(b"-a") and by_offset[b[1]].endswith(b"-b")
    log.close()
    assert len(contents(EmbeddedLog(log_dir))) == 160


@pytest.mark.parametrize("length", [10_000, 2**31])
def test_corrupted_length_before_valid_records_raises_instead_of_cutting(
    log_dir: Path, length: int
) -> None:
    """A bad length field in an early frame points past the end of the file, like a torn
    write would; but whole, valid records follow it, so it is corruption, not a torn tail:
    cutting there would silently drop acknowledged records."""
    log = EmbeddedLog(log_dir)
    log.append(items(3))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 0, length)
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorrupted):
        EmbeddedLog(log_dir)
    assert path.read_bytes() == bytes(data)


@pytest.mark.parametrize("zeros", [8, 9, 4096])
def test_zero_filled_tail_is_cut_not_read_as_records(log_dir: Path, zeros: int) -> None:
    """After a crash some filesystems leave the file longer, the new part zero-filled. A zero
    header reads as an empty body whose CRC-32 (0) matches; no real frame is that short."""
    log = EmbeddedLog(log_dir)
    log.append(items(2))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x00" * zeros)
    log = EmbeddedLog(log_dir)
    assert log.end_offsets() == {0: 2}
    assert contents(log) == [(i, k, v) for i, (k, v) in enumerate(items(2))]
    assert path.stat().st_size == size
    log.close()


def _forty_records(tmp_path: Path, monkeypatch, chunk: int):  # type: ignore[no-untyped-def]
    """Write a log of 40 records, to be read in chunks of `chunk` bytes; return its path, the
    records and its bytes."""
    monkeypatch.setattr(embedded, "RECOVER_CHUNK", chunk)
    every = items(40)
    log = EmbeddedLog(tmp_path)
    log.append(every)
    log.close()
    path = tmp_path / EmbeddedLog.FILE
    return path, every, bytearray(path.read_bytes())


@pytest.mark.parametrize("chunk", [embedded.RECOVER_CHUNK, 7, 61])
def test_iter_frames_reads_every_frame_across_chunk_ends(
    tmp_path: Path,
    monkeypatch,
    chunk: int,  # type: ignore[no-untyped-def]
) -> None:
    # Audits read the file in chunks: frames straddling chunk ends must come out whole, a
    # damaged one flagged where it is, a torn tail left out.
    path, every, data = _forty_records(tmp_path, monkeypatch, chunk)
    data[data.index(b"value-17") + 6] ^= 0x01  # a byte of record 17's value
    data += frame(b"k", b"torn")[:-2]
    path.write_bytes(bytes(data))
    got = list(embedded.iter_frames(path))
    assert [o for o, _, _, _ in got] == list(range(40))
    assert [o for o, ok, _, _ in got if not ok] == [17]
    intact = [kv for i, kv in enumerate(every) if i != 17]
    assert [(k, v) for o, _, k, v in got if o != 17] == intact


def test_a_failed_append_leaves_nothing_for_the_next_one(log_dir: Path, file_size_limit) -> None:  # type: ignore[no-untyped-def]
    # A write that fails half way (a full disk) must leave neither bytes in the file nor in a
    # buffer: before, the buffered writer kept the unwritten rest of the failed append and the
    # next append wrote it first, so the acknowledged record's offset read back a slice of the
    # failed one, and a reopen found the never-acknowledged record in the log.
    log = EmbeddedLog(log_dir)
    assert log.append([(b"k", b"a" * 100)]) == [(0, 0)]
    size = log.path.stat().st_size
    file_size_limit(size + 50)
    with pytest.raises(OSError):
        log.append([(b"k", b"never-acknowledged" * 20)])
    file_size_limit(None)
    assert log.path.stat().st_size == size
    assert log.append([(b"k", b"acknowledged")]) == [(0, 1)]
    expected = [(0, b"k", b"a" * 100), (1, b"k", b"acknowledged")]
    assert contents(log) == expected
    log.close()
    again = EmbeddedLog(log_dir)
    assert contents(again) == expected
    again.close()


@pytest.mark.parametrize("chunk", [embedded.RECOVER_CHUNK, 7, 61])
def test_iter_frames_reads_on_past_a_damaged_frame_header(
    tmp_path: Path,
    monkeypatch,
    chunk: int,  # type: ignore[no-untyped-def]
) -> None:
    # A changed length is damage, not a torn tail: the frame is flagged where it lies and
    # every frame after it is read.
    path, every, data = _forty_records(tmp_path, monkeypatch, chunk)
    at = 0
    for _ in range(17):  # to record 17's header
        at += 8 + struct.unpack_from("<I", data, at)[0]
    data[at + 3] ^= 0x40  # the high byte of record 17's length
    data += frame(b"k", b"torn")[:-2]
    path.write_bytes(bytes(data))
    got = list(embedded.iter_frames(path))
    assert [o for o, _, _, _ in got] == list(range(40))
    assert [o for o, ok, _, _ in got if not ok] == [17]
    assert [(k, v) for _, _, k, v in got] == every


def test_a_reader_beside_a_failed_append_never_sees_a_record_the_writer_takes_back(
    log_dir: Path, file_size_limit, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # `duhub serve aggregate` (or `duhub replay`) beside `duhub serve ingest` on the embedded
    # log reads whole frames as they land, before the writer's fsync. A full disk stopped the
    # writer half way through a batch: it cut the whole frames it had written too, which the
    # reader had already read as records. The reader applied an event the log no longer held
    # (resent, it was answered DUPLICATE: in the figures, never in the log), and its offsets
    # no longer met the writer's: the next acknowledged record took the cut one's offset,
    # which the reader had passed, and the frames after it were never found.
    writer = EmbeddedLog(log_dir)
    assert writer.append([(b"k", b"a" * 100)]) == [(0, 0)]
    reader = EmbeddedLog(log_dir)  # another process's view: no writer's lock
    first, second = frame(b"k", b"b" * 100), frame(b"k", b"c" * 100)
    file_size_limit(writer.path.stat().st_size + len(first) + len(second) // 2)
    real_ftruncate = embedded.os.ftruncate
    read_then: list[tuple[int, bytes, bytes]] = []

    def reader_looks_then_cut(fd: int, size: int) -> None:
        read_then.extend(contents(reader))  # the reader polls while the writer fails
        real_ftruncate(fd, size)

    monkeypatch.setattr(embedded.os, "ftruncate", reader_looks_then_cut)
    with pytest.raises(OSError):
        writer.append([(b"k", b"b" * 100), (b"k", b"c" * 100)])
    file_size_limit(None)
    writer.append([(b"k", b"acknowledged")])
    writer.append([(b"k", b"and after it")])
    # What the reader read stays in the log where it read it; it reads on from there.
    final = contents(writer)
    assert read_then == final[: len(read_then)]
    assert contents(reader) == final
    assert [v for _, _, v in final][-2:] == [b"acknowledged", b"and after it"]
    reader.close()
    writer.close()
    again = EmbeddedLog(log_dir)
    assert contents(again) == final
    again.close()


def test_damaged_last_records_cut_on_open_are_kept_beside_the_log(log_dir: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    # Whole records whose bytes changed at the very end look like a torn write to an open,
    # which cuts them; acknowledged once, they are kept for an audit instead of lost.
    log = EmbeddedLog(log_dir)
    log.append(items(4))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    data = bytearray(path.read_bytes())
    last_two = len(frame(*items(4)[2])) + len(frame(*items(4)[3]))
    data[-1] ^= 0xFF  # a byte of each of the last two records' values
    data[-1 - len(frame(*items(4)[3]))] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="duhub.log.embedded"):
        log = EmbeddedLog(log_dir)
    assert log.end_offsets() == {0: 2}
    log.close()
    kept = log_dir / f"{EmbeddedLog.FILE}.cut-at-{len(data) - last_two}"
    assert kept.read_bytes() == bytes(data[-last_two:])
    assert f"cut {last_two} bytes" in caplog.text and str(kept) in caplog.text


def test_zeros_a_crash_left_are_cut_and_not_kept(log_dir: Path) -> None:
    log = EmbeddedLog(log_dir)
    log.append(items(2))
    log.close()
    path = log_dir / EmbeddedLog.FILE
    path.write_bytes(path.read_bytes() + bytes(4096))
    EmbeddedLog(log_dir).close()
    assert sorted(p.name for p in log_dir.iterdir() if ".cut-at-" in p.name) == []


def test_a_long_run_of_damaged_frames_to_the_end_is_read_in_one_walk(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Each damaged frame asks whether whole frames lead from it to the end of the file; asked
    # by walking there each time, 3,000 of them took ~4.5M steps: a log whose every checksum
    # is wrong (a bug, an edit) would never finish its audit.
    n = 3000
    data = bytearray()
    for k, v in items(n):
        body = struct.pack("<H", len(k)) + k + v
        data += struct.pack("<II", len(body), zlib.crc32(body) ^ 1) + body
    path = tmp_path / EmbeddedLog.FILE
    path.write_bytes(bytes(data))
    steps = 0
    step = embedded._Window._after

    def counted(self, pos):  # type: ignore[no-untyped-def]
        nonlocal steps
        steps += 1
        return step(self, pos)

    monkeypatch.setattr(embedded._Window, "_after", counted)
    got = list(embedded.iter_frames(path))
    assert [o for o, ok, _, _ in got] == list(range(n))
    assert not any(ok for _, ok, _, _ in got)
    assert steps < 3 * n, steps
