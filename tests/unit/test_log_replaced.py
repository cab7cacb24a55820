"""A read model keeps the last record it applied per partition (its offset and a hash of its key
and value): a log made again that grew past the read model's positions holds another record
there, and a service starting on it refuses (duhub/log/belongs.py). Before 2026-12-05 offsets
alone were compared: the service started and took the new log's records below the positions
for applied ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from duhub.log.base import LogRecord
from duhub.log.belongs import LogLost, check_belongs, not_held
from duhub.log.identity import record_hash
from duhub.readmodel.digest import digest, table_digests
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import batch_rows, read_marks, read_positions, write_rows
from services.aggregate.embedded import LogTailer
from tests.unit.builders import NOW, YIDU_V1, Pipeline, hierarchy, visit


def _built(where: Path, visits: int, now: int = NOW) -> Pipeline:
    p = Pipeline.open(where)
    p.clock.now = now
    p.publish(hierarchy(), allow_reference=True)
    p.publish([visit(YIDU_V1, event_id=f"v{i}", seq=i) for i in range(1, visits + 1)])
    p.tailer.catch_up()
    return p


def _persons(p: Pipeline) -> int:
    with p.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM events_seen").scalar_one())


def test_the_read_model_keeps_the_last_record_it_applied(tmp_path: Path) -> None:
    p = _built(tmp_path / "a", 3)
    try:
        end = p.end()
        (last,) = p.log.read(0, end - 1, 1)
        assert read_positions(p.engine) == {0: end}
        assert read_marks(p.engine) == {0: (end - 1, record_hash(last.key, last.value))}
        check_belongs(p.log, p.engine)  # its own log
    finally:
        p.close()


def test_a_log_made_again_past_the_read_model_is_refused(tmp_path: Path) -> None:
    a = _built(tmp_path / "a", 3)
    # Another log, stamped a second later, holding more records than `a` applied.
    b = _built(tmp_path / "b", 8, now=NOW + 1_000_000_000)
    try:
        held = a.end()
        assert b.end() > held
        with pytest.raises(
            ValueError,
            match=rf"^--db: the read model was built from another log \(partition 0: the record "
            rf"it applied last, at offset {held - 1}, is not the log's: the log holds another "
            r"there \(their keys or values differ\)\)",
        ):
            check_belongs(b.log, a.engine)
        # A tailer reading it anyway stops too, before it applies anything (before, it took
        # b's records below the position for applied ones, and counted only those past it).
        events = _persons(a)
        with pytest.raises(
            LogLost, match=rf"partition 0: the record it applied last, at offset {held - 1}"
        ):
            LogTailer(b.log, a.engine).catch_up()
        assert _persons(a) == events
    finally:
        a.close()
        b.close()


def test_a_running_tailer_stops_when_the_log_it_reads_again_was_made_again(
    tmp_path: Path,
) -> None:
    """duhub up and the embedded hub's aggregator: a partition read again after a pause is
    applied only once the log holds the record applied last."""
    a = _built(tmp_path / "a", 3)
    b = _built(tmp_path / "b", 8, now=NOW + 1_000_000_000)
    try:
        held, events = a.end(), _persons(a)
        tailer = LogTailer(a.log, a.engine)
        assert tailer.step() == 0  # nothing new: idle
        tailer.log = b.log  # the log made again under it, grown past its position
        with pytest.raises(
            LogLost,
            match=rf"^--log was made again under the running service \(partition 0: the record "
            rf"it applied last, at offset {held - 1}, is not the log's: the log holds another",
        ):
            tailer.step()
        assert _persons(a) == events  # nothing of the new log taken
        assert read_positions(a.engine) == {0: held}
    finally:
        a.close()
        b.close()


class _Log:
    """A log holding records at `offsets` of partition 0, kept from `start` on."""

    def __init__(self, offsets: list[int], start: int = 0) -> None:
        self.records = [LogRecord(0, o, b"k", b"v%d" % o) for o in offsets]
        self.start = start
        self.reads: list[int] = []

    def start_offsets(self) -> dict[int, int]:
        return {0: self.start}

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        self.reads.append(offset)
        return [r for r in self.records if r.offset >= offset][:limit]


def test_a_missing_record_is_another_log_unless_deleted_from_the_front() -> None:
    log = _Log([0, 1, 5, 6])  # 2-4: a transaction's markers or aborted records
    mark = record_hash(b"k", b"v1")
    assert not_held(log, {0: (1, mark)}) == {}
    assert not_held(log, {0: (1, record_hash(b"k", b"v9"))}) == {
        0: (1, "the log holds another there (their keys or values differ)")
    }
    assert not_held(log, {0: (3, mark)}) == {
        0: (3, "the log holds no record there (its next is at 5)")
    }
    assert not_held(log, {0: (7, mark)}) == {0: (7, "the log holds no record there, nor after it")}
    front_gone = _Log([5, 6], start=5)  # retention deleted 0-4: nothing to compare
    assert not_held(front_gone, {0: (1, mark)}) == {}
    assert front_gone.reads == []
    assert not_held(log, {}) == {}


def test_marks_commit_with_the_positions(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    try:
        rows = batch_rows([])
        rows.marks = {0: (4, -7), 1: (2, 9)}
        write_rows(engine, rows, {0: 5, 1: 3}, expected={})  # compare-and-set
        assert read_marks(engine) == {0: (4, -7), 1: (2, 9)}
        rows.marks = {1: (5, 11)}
        write_rows(engine, rows, {1: 6})  # upsert
        assert read_marks(engine) == {0: (4, -7), 1: (5, 11)}
        # Moved without one (a write of an earlier version's shape): the mark it had stays, a
        # record still in the log below the position.
        write_rows(engine, batch_rows([]), {0: 9}, expected={0: 5})
        assert read_positions(engine) == {0: 9, 1: 6}
        assert read_marks(engine) == {0: (4, -7), 1: (5, 11)}
    finally:
        engine.dispose()


def test_marks_stay_out_of_the_digest(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    try:
        before = digest(table_digests(engine))
        rows = batch_rows([])
        rows.marks = {0: (4, -7)}
        write_rows(engine, rows, {0: 5})
        assert digest(table_digests(engine)) == before
    finally:
        engine.dispose()


def test_an_older_read_model_without_marks_opens_and_gets_them_with_its_next_batch(
    tmp_path: Path,
) -> None:
    p = _built(tmp_path / "a", 3)
    db = p.dir / "readmodel.db"
    try:
        held = p.end()
        p.engine.dispose()
        with sqlite3.connect(db) as conn:  # as an earlier version left it
            conn.execute("ALTER TABLE log_positions DROP COLUMN last_offset")
            conn.execute("ALTER TABLE log_positions DROP COLUMN last_hash")
            conn.execute("DELETE FROM layout WHERE name = 'position-marks'")
        p.engine = open_engine(f"sqlite:///{db}")
        assert read_positions(p.engine) == {0: held}
        assert read_marks(p.engine) == {}  # nothing to compare yet: it opens as before
        check_belongs(p.log, p.engine)
        p.publish([visit(YIDU_V1, event_id="v9", seq=9)])
        LogTailer(p.log, p.engine).catch_up()
        (last,) = p.log.read(0, held, 1)
        assert read_marks(p.engine) == {0: (held, record_hash(last.key, last.value))}
    finally:
        p.close()
