"""The embedded log: one append-only file, one partition, fsync before acknowledging.

Record frame: u32 body length | u32 CRC-32 of body | body, where body = u16 key length | key |
value. A torn frame at the very end (a crash mid-write, never acknowledged) is cut off on open,
its bytes kept beside the log (`events.log.cut-at-BYTE`) and the cut logged; a bad frame
anywhere else is corruption and stops the open. Only a process holding the writer's lock (a
flock on the file) cuts: beside a running writer, what follows the last whole frame is its
append in progress. An append that fails half way (a full disk) keeps the whole frames it
wrote, unacknowledged, and cuts only a part frame: a reader may have read them already.
`events.idx` beside the log (see `duhub.log.index`) lets an open walk
only the records after the prefix it vouches for.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from duhub.log import index
from duhub.log.base import LogClosed, LogCorrupted, LogRecord, read_range

HEADER = struct.Struct("<II")
KEYLEN = struct.Struct("<H")
MAX_RECORD = 64 * 1024 * 1024
RECOVER_CHUNK = 16 * 1024 * 1024
log = logging.getLogger(__name__)

# How long a writer waits for the lock another process may hold for a moment.
WRITER_PATIENCE_S = 5.0


class EmbeddedLog:
    FILE = "events.log"
    INDEX = "events.idx"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as make_data_dir
        self.path = self.dir / self.FILE
        self._index_path = self.dir / self.INDEX
        self._indexed = 0  # records the index file on disk covers (as far as we know)
        self.walked = 0  # records the open walked (the others came from the index)
        self._lock = threading.Lock()
        self._grew = threading.Condition(self._lock)
        # Byte position of every record: 8 bytes a record keeps 10M records in 80 MB.
        self._positions = array("Q")
        # Where this open kept what it cut from the log's end (`_keep_cut`), if it cut any.
        self.cut_kept: Path | None = None
        self._end = self._recover()
        self._writer: BinaryIO | None = None  # opened, and locked, by the first append
        self._dirty = False  # a failed append left bytes past self._end it could not cut
        self._reader = open(self.path, "rb")  # noqa: SIM115 - held for the log's life
        self._closed = False

    def _open_writer(self) -> BinaryIO:
        writer = open(self.path, "ab")  # noqa: SIM115
        # One writer per log: a second process appending would interleave frames. Another
        # process may hold the lock for a moment (cutting a torn tail, writing the index).
        deadline = time.monotonic() + WRITER_PATIENCE_S
        while not _try_lock(writer):
            if time.monotonic() > deadline:
                writer.close()
                raise RuntimeError(f"log: another process is writing {self.path}")
            time.sleep(0.05)
        self._refresh()  # frames another process appended before we took the lock
        # Past the last whole frame: a torn write of a writer gone (we hold the lock now).
        size = os.fstat(writer.fileno()).st_size
        if size > self._end:
            self._cut_torn_tail(self._reader, self._end, size)
        return writer

    def _refresh(self) -> None:
        """Index whole frames another process appended since we last looked (lock held)."""
        size = os.fstat(self._reader.fileno()).st_size
        if size <= self._end:
            return
        data = os.pread(self._reader.fileno(), size - self._end, self._end)
        pos = 0
        # A frame not whole yet is still being written; one failing its checksum is no
        # record (the open that follows a writer's end decides whether it is torn or damaged).
        while pos + HEADER.size <= len(data) and _frame_at(data, pos):
            self._positions.append(self._end + pos)
            pos += HEADER.size + HEADER.unpack_from(data, pos)[0]
        if pos:
            self._end += pos
            self._grew.notify_all()

    def _recover(self) -> int:
        """Index every whole record; cut a torn tail when no writer is appending; return the
        end position of the last whole record."""
        if not self.path.exists():
            self.path.touch()
            _fsync_dir(self.dir)
            return 0
        pos = 0  # file position of the next frame
        with open(self.path, "rb") as f:
            found = index.load(self._index_path, f)
            if found is not None:
                self._positions, pos = found
                self._indexed = len(self._positions)
            # Up to the size seen now: a writer may be appending, and what lies past the last
            # whole frame may be its append in progress, not a torn one.
            size = os.fstat(f.fileno()).st_size
            pos = self._walk(f, pos, size)
            self.walked = len(self._positions) - self._indexed
            if pos == size and self.walked < index.MIN_RECORDS:
                return pos
            if not _try_lock(f):
                # A writer is appending: leave its tail to it; a bad frame with whole ones
                # after it (in bytes written before we looked) is damage all the same.
                self._refuse_damage(f, pos, size)
                return pos
            try:
                # No writer, and none can start while we hold the lock: the file is as it is.
                size = os.fstat(f.fileno()).st_size
                pos = self._walk(f, pos, size)
                if pos != size:
                    self._cut_torn_tail(f, pos, size)
                self.walked = len(self._positions) - self._indexed
                if self.walked >= index.MIN_RECORDS:
                    # Walked a long way: spare the next open (this process may never close).
                    self._save_index(f, self._positions, pos)
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return pos

    def _walk(self, f: BinaryIO, pos: int, size: int) -> int:
        """Index the whole frames from byte `pos` up to `size`; return where they stop."""
        # In chunks: a log of 10M events is ~1.5 GB, and reading it whole on open made that
        # the peak memory of every process opening it.
        data, base = b"", pos  # data holds the file from byte `base` on
        while pos + HEADER.size <= size:
            at = pos - base
            need = HEADER.size
            if at + HEADER.size <= len(data):
                need += min(HEADER.unpack_from(data, at)[0], MAX_RECORD)
            if at + need > len(data) and base + len(data) < size:
                more = os.pread(
                    f.fileno(),
                    min(max(RECOVER_CHUNK, need), size - base - len(data)),
                    base + len(data),
                )
                data, base = data[at:] + more, pos
                continue
            if not _frame_at(data, at):
                break
            self._positions.append(pos)
            pos += HEADER.size + HEADER.unpack_from(data, at)[0]
        return pos

    def _cut_torn_tail(self, f: BinaryIO, pos: int, end: int) -> None:
        """Cut what follows the last whole frame at `pos` (the writer's lock held): a torn last
        write, or the zeros or garbage a crash left after it. When a whole frame follows, the
        frame at `pos` is a damaged record instead: cutting would drop acknowledged ones."""
        self._refuse_damage(f, pos, end)
        kept = self.cut_kept = self._keep_cut(f, pos, end)
        with open(self.path, "r+b") as w:
            w.truncate(pos)
            os.fsync(w.fileno())
        log.warning(
            "%s: cut %d bytes after the last whole record (byte %d): a write a crash cut "
            "short (never acknowledged), or the last records damaged%s",
            self.path,
            end - pos,
            pos,
            f"; kept in {kept}" if kept else " (zeros only)",
        )

    def _keep_cut(self, f: BinaryIO, pos: int, end: int) -> Path | None:
        """Copy what is about to be cut to a file beside the log, and return it (None when it
        is zeros only). A write cut short is what a crash leaves, but whole records whose
        bytes changed at the very end look the same to an open: they stay for an audit."""
        tail = os.pread(f.fileno(), end - pos, pos)
        if not tail.strip(b"\0"):
            return None
        kept = self.dir / f"{self.FILE}.cut-at-{pos}"
        for n in itertools.count(1):
            if not kept.exists():
                break
            kept = self.dir / f"{self.FILE}.cut-at-{pos}.{n}"
        with open(kept, "xb") as w:
            w.write(tail)
            os.fsync(w.fileno())
        _fsync_dir(self.dir)
        return kept

    def _refuse_damage(self, f: BinaryIO, pos: int, end: int) -> None:
        """Raise LogCorrupted when a whole frame lies after the bad one at `pos` (before
        `end`): that one is a damaged record, not a torn last write."""
        rest = os.pread(f.fileno(), end - pos, pos)
        if any(_frame_at(rest, p) for p in range(1, len(rest) - HEADER.size)):
            raise LogCorrupted(f"{self.path}: record at byte {pos} is damaged")

    def _save_index(self, f: BinaryIO, positions: array, end: int) -> None:
        """Write the index (the writer's lock held: nothing can change the file meanwhile).
        The last record is checked where the positions put it: the file may have changed
        since an unlocked walk found it (a writer cutting what it could not write whole)."""
        if not positions or not _frame_at(
            os.pread(f.fileno(), end - positions[-1], positions[-1]), 0
        ):
            return
        if index.save(self._index_path, f, positions, end):
            self._indexed = len(positions)

    def claim_writer(self) -> None:
        """Become the log's writer now (RuntimeError when another process is): a hub takes
        the lock at start, not at its first append, so a second one on the same log stops
        there instead of answering every publish with an error."""
        with self._lock:
            if self._writer is None:
                self._writer = self._open_writer()

    def append(self, items: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
        frames = bytearray()
        sizes = []
        for key, value in items:
            body = KEYLEN.pack(len(key)) + key + value
            frames += HEADER.pack(len(body), zlib.crc32(body)) + body
            sizes.append(HEADER.size + len(body))
        with self._lock:
            if self._closed:
                raise LogClosed("log is closed")
            if self._writer is None:
                self._writer = self._open_writer()
            first = len(self._positions)
            start = self._end
            fd = self._writer.fileno()
            if self._dirty:
                # A failed append could not cut what it wrote: cut it now, or fail again.
                os.ftruncate(fd, start)
                self._dirty = False
            written = 0
            try:
                # Straight to the file (O_APPEND), not through the writer's buffer: a buffer
                # keeps what a failed write (a full disk) left unwritten, and the next append
                # flushed it ahead of its own frames, at offsets it did not count.
                view = memoryview(frames)
                while view:
                    n = os.write(fd, view)
                    written += n
                    view = view[n:]
                os.fdatasync(fd)
            except OSError:
                self._keep_whole(fd, start, sizes, written)
                raise
            self._index(start, sizes)
        return [(0, first + i) for i in range(len(items))]

    def _index(self, start: int, sizes: Sequence[int]) -> None:
        """Count the frames of `sizes` written from byte `start` on as records (lock held)."""
        pos = start
        for n in sizes:
            self._positions.append(pos)
            pos += n
        self._end = pos
        if sizes:
            self._grew.notify_all()

    def _keep_whole(self, fd: int, start: int, sizes: Sequence[int], written: int) -> None:
        """After a failed append (lock held): keep the whole frames it wrote, as records not
        acknowledged, and cut only a part frame after them. A reader in another process
        (`duhub serve aggregate`, `duhub replay`) takes whole frames as they land, before the
        fsync: cutting them took back records it had read, and the next append put other
        records under offsets it had passed. Ingest, told the append failed, waits until the
        read model holds all the log does before it checks more (`Ingestor._resync`), as
        after a broker's lost acknowledgement."""
        whole = list(itertools.takewhile(lambda end: end <= written, itertools.accumulate(sizes)))
        self._index(start, sizes[: len(whole)])
        try:
            os.ftruncate(fd, self._end)
        except OSError:
            self._dirty = True

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        if partition != 0:
            raise ValueError(f"partition: the embedded log has only partition 0, not {partition}")
        with self._lock:
            if self._writer is None:
                self._refresh()
            count = len(self._positions)
            if offset >= count:
                return []
            stop = min(count, offset + limit)
            start_pos = self._positions[offset]
            end_pos = self._positions[stop] if stop < count else self._end
        data = os.pread(self._reader.fileno(), end_pos - start_pos, start_pos)
        out = []
        pos = 0
        for off in range(offset, stop):
            length, _crc = HEADER.unpack_from(data, pos)
            body = data[pos + HEADER.size : pos + HEADER.size + length]
            (klen,) = KEYLEN.unpack_from(body, 0)
            out.append(LogRecord(0, off, bytes(body[2 : 2 + klen]), bytes(body[2 + klen :])))
            pos += HEADER.size + length
        return out

    def read_uncommitted(self, positions: dict[int, int]) -> Iterator[LogRecord]:
        """Yield the records from `positions[0]` on: this log has no transactions, so this is
        what `read` gives."""
        return read_range(self, 0, positions.get(0, 0), self.end_offsets()[0])

    def partitions(self) -> list[int]:
        return [0]

    def end_offsets(self) -> dict[int, int]:
        with self._lock:
            if self._writer is None:
                self._refresh()
            return {0: len(self._positions)}

    def start_offsets(self) -> dict[int, int]:
        return {0: 0}  # nothing is ever deleted from its front

    def ping(self) -> None:
        """Raise OSError unless the log file can be appended to (health probes)."""
        if not self.path.exists():
            raise OSError(f"log: {self.path} is gone")
        if not os.access(self.path, os.W_OK):
            raise OSError(f"log: {self.path} is not writable")
        fs = os.statvfs(self.path)
        if fs.f_bavail * fs.f_frsize < 1024 * 1024:  # ENOSPC: health says the disk is full
            raise OSError(errno.ENOSPC, f"log: no space left on the device holding {self.path}")

    def wait(self, positions: dict[int, int], timeout: float) -> bool:
        want = positions.get(0, 0)
        with self._grew:
            if self._writer is None:
                # A reader beside another process's writer: look at the file now and then.
                self._refresh()
                timeout = min(timeout, 0.05)
            return self._grew.wait_for(lambda: len(self._positions) > want or self._closed, timeout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._grew.notify_all()
            positions, end = self._positions, self._end
        if len(positions) - self._indexed >= index.MIN_RECORDS:
            if self._writer is not None:  # it holds the lock
                self._save_index(self._reader, positions, end)
            elif _try_lock(self._reader):  # else a writer is appending: it writes the index
                try:
                    self._save_index(self._reader, positions, end)
                finally:
                    fcntl.flock(self._reader.fileno(), fcntl.LOCK_UN)
        if self._writer is not None:
            self._writer.close()
        self._reader.close()


def _try_lock(f: BinaryIO) -> bool:
    """Take the writer's lock on `f` if no one holds it (an advisory lock on the log file)."""
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _frame_at(data: bytes, pos: int) -> bool:
    """Return whether a whole frame with a matching checksum starts at `pos`."""
    length, crc = HEADER.unpack_from(data, pos)
    end = pos + HEADER.size + length
    # Every body holds at least its key length: a zero header (CRC-32 of b"" is 0) is no frame.
    return (
        KEYLEN.size <= length <= MAX_RECORD
        and end <= len(data)
        and zlib.crc32(memoryview(data)[pos + HEADER.size : end]) == crc
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_frames(
    path: str | os.PathLike[str], torn: list[int] | None = None
) -> Iterator[tuple[int, bool, bytes, bytes]]:
    """Yield (offset, checksum ok, key, value) of every frame, bad ones included: for audits,
    which must read past what `EmbeddedLog` refuses to open. Read in chunks: a log of 10M
    events is ~1.4 GB.

    A frame whose checksum fails is yielded as it lies when its length leads to the next whole
    frame, or through frames of lengths that fit to the very end of the file (the last events'
    bodies changed: one or several): its body was changed. A damaged frame header (a length
    that leads nowhere) is yielded as one bad record spanning up to the next whole frame, and
    the walk goes on from there: a changed byte must never hide the records after it. Only
    what no whole frame follows and no chain of lengths fills is a torn tail (a write cut
    short runs past the end), left out; `torn`, when given, is told its bytes once the walk
    has ended (0: none)."""
    with open(path, "rb") as f:
        window = _Window(f)
        size = window.size
        offset = pos = 0
        while pos + HEADER.size <= size:
            length, crc = HEADER.unpack(window.get(pos, pos + HEADER.size))
            end = pos + HEADER.size + length
            if KEYLEN.size <= length <= MAX_RECORD and end <= size:
                body = window.get(pos + HEADER.size, end)
                ok = zlib.crc32(body) == crc
                if ok or window.frame_at(end) or window.whole_frames_to_end(end):
                    (klen,) = KEYLEN.unpack_from(body, 0)
                    yield offset, ok, body[2 : 2 + klen], body[2 + klen :]
                    pos, offset = end, offset + 1
                    continue
            following = window.next_frame(pos + 1)
            if following is None:
                break  # a torn tail: no whole frame after it
            body = window.get(pos + HEADER.size, following)
            (klen,) = KEYLEN.unpack_from(body, 0) if len(body) >= KEYLEN.size else (0,)
            if KEYLEN.size + klen > len(body):
                klen = len(body) - KEYLEN.size  # the value is what lies there, for what it is
            yield offset, False, body[2 : 2 + klen], body[2 + klen :]
            pos, offset = following, offset + 1
        if torn is not None:
            torn.append(size - pos)  # also the few bytes no frame header fits in


class _Window:
    """Reads of a file through one buffer of at least RECOVER_CHUNK bytes."""

    def __init__(self, f: BinaryIO) -> None:
        self.fd = f.fileno()
        self.size = os.fstat(self.fd).st_size
        self.base = 0
        self.data = b""
        # A frame `whole_frames_to_end` walked from to the end of the file: the frames after
        # it lie on that walk, and are answered without walking again.
        self._to_end: int | None = None

    def get(self, start: int, stop: int) -> bytes:
        """Return the bytes [start, stop) of the file (stop within it)."""
        if start < self.base or stop > self.base + len(self.data):
            want = min(max(RECOVER_CHUNK, stop - start), self.size - start)
            self.data, self.base = os.pread(self.fd, want, start), start
        return self.data[start - self.base : stop - self.base]

    def frame_at(self, pos: int) -> bool:
        """Return whether a whole frame with a matching checksum starts at byte `pos`."""
        if pos + HEADER.size > self.size:
            return False
        length, _ = HEADER.unpack(self.get(pos, pos + HEADER.size))
        end = pos + HEADER.size + length
        if not KEYLEN.size <= length <= MAX_RECORD or end > self.size:
            return False
        return _frame_at(self.get(pos, end), 0)

    def whole_frames_to_end(self, pos: int) -> bool:
        """Return whether frames of lengths that fit, checksums aside, lead from byte `pos`
        exactly to the end of the file. A torn last write runs past it, and the zeros a crash
        may leave hold no length that fits; whole frames there are records whose bytes
        changed, to be reported, not dropped."""
        if pos >= self.size:
            return pos == self.size
        if self._to_end is not None and pos == self._after(self._to_end):
            self._to_end = pos  # the next frame of a walk that reached the end: linear
            return True
        start = pos
        while pos < self.size:
            pos = self._after(pos)
            if pos is None:
                return False
        self._to_end = start
        return True

    def _after(self, pos: int) -> int | None:
        """Return where the frame at `pos` ends when its length fits in the file, else None."""
        if pos + HEADER.size > self.size:
            return None
        length, _ = HEADER.unpack(self.get(pos, pos + HEADER.size))
        end = pos + HEADER.size + length
        return end if KEYLEN.size <= length <= MAX_RECORD and end <= self.size else None

    def next_frame(self, pos: int) -> int | None:
        """Return where the first whole frame at or after byte `pos` starts, or None."""
        while pos + HEADER.size <= self.size:
            if self.frame_at(pos):
                return pos
            pos += 1
        return None
