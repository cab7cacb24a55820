"""Write-behind on PostgreSQL: folding batch k+1 while batch k is written gives the very read
model that applying them in turn gives (duplicates across batches, events naming what the batch
before registered, problems found and rectified across batches), and a batch whose write
fails is applied again with nothing folded on top of it kept."""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator

import pytest

from bench.events import stored_records
from duhub.log.base import LogRecord
from duhub.projections.timegrid import GRAINS, MONTH, YEAR
from duhub.readmodel.coverage import coverage
from duhub.readmodel.digest import digest, figure_diffs, table_digests
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from services.aggregate.apply import Applied, BatchApplier
from services.aggregate.write_behind import WriteBehind
from tests.infra import fresh_database
from tests.unit.builders import (
    DANG_T1,
    DANG_V1,
    YIDU,
    YIDU_T1,
    YIDU_T2,
    YIDU_V1,
    campaign,
    group,
    hierarchy,
    ts,
    visit,
)

PARTITIONS = 4
BATCH = 400


@pytest.fixture(scope="module")
def records() -> list[LogRecord]:
    """A realistic stream (reference data, the simulator's mix, resends) over 4 partitions."""
    items, _ = stored_records(3000, seed=5, duplicates_in_log=True)
    offsets = [0] * PARTITIONS
    out = []
    for key, value in items:
        p = zlib.crc32(key) % PARTITIONS
        out.append(LogRecord(p, offsets[p], key, value, ingested=True))
        offsets[p] += 1
    return out


def batches(records: list[LogRecord], positions: dict[int, int]) -> Iterator[list[LogRecord]]:
    """Deliver as a consumer would: a slice of every partition per batch, from `positions`."""
    by_partition = {p: [r for r in records if r.partition == p] for p in range(PARTITIONS)}
    step = BATCH // PARTITIONS
    while any(positions.get(p, 0) < len(rs) for p, rs in by_partition.items()):
        yield [
            r
            for p, rs in by_partition.items()
            for r in rs[positions.get(p, 0) : positions.get(p, 0) + step]
        ]


def apply_all(writer: WriteBehind | BatchApplier, records: list[LogRecord]) -> None:
    applier = writer.applier if isinstance(writer, WriteBehind) else writer
    for _ in range(10_000):
        batch = next(batches(records, applier.positions), None)
        if batch is None:
            break
        writer.apply(batch)
    if isinstance(writer, WriteBehind):
        writer.flush()


def test_write_behind_builds_the_read_model_applying_in_turn_builds(records, caplog) -> None:
    caplog.set_level(logging.INFO, logger="services.aggregate.write_behind")
    with fresh_database() as in_turn_url, fresh_database() as behind_url:
        in_turn, behind = open_engine(in_turn_url), open_engine(behind_url)
        try:
            apply_all(BatchApplier(in_turn), records)
            told: list[Applied] = []
            writer = WriteBehind(BatchApplier(behind), on_committed=told.append)
            assert writer.overlapping
            apply_all(writer, records)
            writer.close()
            assert sum(t.records for t in told) == len(records)
            # Each batch was folded on the one before it, never against a read model that did
            # not hold it yet (which the read model's keys would refuse, forcing a retry).
            assert "failed" not in caplog.text
            assert digest(table_digests(behind)) == digest(table_digests(in_turn)), figure_diffs(
                in_turn, behind
            )
        finally:
            in_turn.dispose()
            behind.dispose()


def test_a_failed_write_is_applied_again_and_nothing_counts_twice(records, caplog) -> None:
    caplog.set_level(logging.INFO, logger="services.aggregate.write_behind")
    first, second = records[:1500], records
    with fresh_database() as reference_url, fresh_database() as url:
        reference, engine = open_engine(reference_url), open_engine(url)
        try:
            apply_all(BatchApplier(reference), second)
            writer = WriteBehind(BatchApplier(engine))
            # Another worker applies the first records before this one's writes land: every
            # batch it wrote behind over them conflicts on the positions.
            other = BatchApplier(engine)
            apply_all(other, first)
            apply_all(writer, second)
            writer.close()
            assert "a batch written behind failed" in caplog.text
            assert writer.applier.positions == read_positions(engine)
            assert digest(table_digests(engine)) == digest(table_digests(reference)), figure_diffs(
                reference, engine
            )
        finally:
            reference.dispose()
            engine.dispose()


class HeldWrites:
    """Hold an applier's writes until released, counting those that started."""

    def __init__(self, applier: BatchApplier) -> None:
        self.release = threading.Event()
        self.started = 0
        real_write = applier.write

        def held_write(prepared, via=None):  # type: ignore[no-untyped-def]
            self.started += 1
            assert self.release.wait(30)
            return real_write(prepared, via)

        applier.write = held_write  # type: ignore[method-assign]


def returns_within(seconds: float, call) -> bool:  # type: ignore[no-untyped-def]
    """Run `call` in a thread; return whether it returned within `seconds` (it runs on)."""
    done = threading.Event()
    threading.Thread(target=lambda: (call(), done.set()), daemon=True).start()
    return done.wait(seconds)


def test_a_batch_that_only_waits_does_not_wait_for_the_write_in_flight() -> None:
    def record(partition: int, offset: int, msg) -> LogRecord:  # type: ignore[no-untyped-def]
        msg.recorded_at.CopyFrom(ts(1_700_000_000_000_000_000 + offset))
        return LogRecord(partition, offset, b"k", msg.SerializeToString(), ingested=True)

    with fresh_database() as url:
        engine = open_engine(url)
        try:
            applier = BatchApplier(engine)
            writer = WriteBehind(applier)
            held = HeldWrites(applier)
            refs = [record(2, i, e) for i, e in enumerate(hierarchy())]
            writer.apply(refs)
            assert writer.pending
            # A visit to a village nobody has registered yet: it waits, and with nothing to
            # write, the call returns while the reference data is still being written.
            later = f"{YIDU_T1}-later"
            waits = writer.apply([record(0, 0, visit(later, event_id="v0", source=YIDU, seq=1))])
            assert waits.blocked == {0} and waits.records == 0
            assert writer.pending
            held.release.set()
            writer.close()
            assert read_positions(engine) == {2: len(refs)} == applier.positions
        finally:
            engine.dispose()


def test_the_next_batch_does_not_wait_for_the_write_in_flight_but_the_third_does(
    records,
) -> None:
    with fresh_database() as reference_url, fresh_database() as url:
        reference, engine = open_engine(reference_url), open_engine(url)
        try:
            applier = BatchApplier(engine)
            writer = WriteBehind(applier)
            held = HeldWrites(applier)
            writer.apply(next(batches(records, applier.positions)))
            # Folded on top of the first while it is still being written: handed over too.
            assert returns_within(
                10, lambda: writer.apply(next(batches(records, applier.positions)))
            )
            # A third waits until the first is committed (at most two in flight).
            third = next(batches(records, applier.positions))
            assert not returns_within(0.5, lambda: writer.apply(third))
            assert held.started == 1 and read_positions(engine) == {}
            held.release.set()
            apply_all(writer, records)
            writer.close()
            apply_all(BatchApplier(reference), records)
            assert applier.positions == read_positions(engine) == read_positions(reference)
            assert digest(table_digests(engine)) == digest(table_digests(reference)), figure_diffs(
                reference, engine
            )
        finally:
            reference.dispose()
            engine.dispose()


def test_when_the_older_of_two_writes_in_flight_fails_both_are_applied_again(
    records, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="services.aggregate.write_behind")
    with fresh_database() as reference_url, fresh_database() as url:
        reference, engine = open_engine(reference_url), open_engine(url)
        try:
            applier = BatchApplier(engine)
            told: list[Applied] = []
            writer = WriteBehind(applier, on_committed=told.append)
            held = HeldWrites(applier)
            writer.apply(next(batches(records, applier.positions)))
            writer.apply(next(batches(records, applier.positions)))
            assert len(writer._inflight) == 2
            # Meanwhile another worker applies the first 150 records: both writes in flight
            # conflict on the positions (the second was folded on the first).
            two = dict(applier.positions)
            other = BatchApplier(engine)
            apply_all(other, records[:150])
            held.release.set()
            writer.flush()
            # Both applied again without being delivered again (a consumer moved on); records
            # they left waiting may have gone through this time.
            assert read_positions(engine) == applier.positions
            for p in two | other.positions:
                assert applier.positions[p] >= max(two.get(p, 0), other.positions.get(p, 0))
            apply_all(writer, records)
            writer.close()
            assert caplog.text.count("a batch written behind failed") == 1
            apply_all(BatchApplier(reference), records)
            assert applier.positions == read_positions(engine) == read_positions(reference)
            # Each record counted once: by the other worker, or told once by this one.
            assert sum(t.records for t in told) == len(records) - 150
            assert digest(table_digests(engine)) == digest(table_digests(reference)), figure_diffs(
                reference, engine
            )
        finally:
            reference.dispose()
            engine.dispose()


def test_postgresql_sums_the_rollups_as_the_python_fold_does(records, tmp_path) -> None:
    """PostgreSQL sums a batch's rollups in SQL from its facts, SQLite in Python
    (`rollup_rows`): the same stream, in the same batches, gives the same read model, every
    rollup row (scope, grain, bucket, value, number of events) alike."""
    lite = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    with fresh_database() as url:
        pg = open_engine(url)
        try:
            apply_all(BatchApplier(lite), records)
            apply_all(BatchApplier(pg), records)
            with pg.connect() as conn:
                grains = dict(
                    conn.exec_driver_sql(
                        "SELECT grain, count(DISTINCT bucket) FROM rollups GROUP BY grain"
                    ).all()
                )
            # Every grain is there, over more than one month and one year: the buckets are
            # worth comparing.
            assert set(grains) == set(GRAINS) and grains[MONTH] > 1 and grains[YEAR] > 1
            assert table_digests(pg) == table_digests(lite), figure_diffs(lite, pg)
            # And coverage answers alike from both, for every campaign and a scope in seven.
            with lite.connect() as conn:
                camps = [c for (c,) in conn.exec_driver_sql("SELECT campaign_id FROM campaigns")]
                units = [u for (u,) in conn.exec_driver_sql("SELECT unit_id FROM units")]
            assert camps and len(units) > 100
            for cid in camps:
                for scope in ["", *units[::7]]:
                    assert coverage(pg, cid, scope) == coverage(lite, cid, scope), (cid, scope)
        finally:
            pg.dispose()
            lite.dispose()


def test_coverage_of_a_scope_without_targets_on_postgresql(tmp_path) -> None:
    """A township none of the campaign's targets lies in: nothing to count, and no empty IN
    list for PostgreSQL to refuse; the same reports as SQLite's for every scope."""

    def record(offset: int, msg) -> LogRecord:  # type: ignore[no-untyped-def]
        msg.recorded_at.CopyFrom(ts(1_700_000_000_000_000_000 + offset))
        return LogRecord(0, offset, b"k", msg.SerializeToString(), ingested=True)

    events = [
        *hierarchy(),
        campaign("c", [group("g", pb.TIER_CITY, YIDU_V1, DANG_V1)], event_id="camp", seq=1),
        visit(YIDU_V1, "c", "g", event_id="v1", seq=2),
    ]
    records = [record(i, e) for i, e in enumerate(events)]
    lite = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    with fresh_database() as url:
        pg = open_engine(url)
        try:
            BatchApplier(lite).apply(records)
            BatchApplier(pg).apply(records)
            for scope in ("", YIDU, YIDU_T1, YIDU_V1, YIDU_T2, DANG_T1):
                assert coverage(pg, "c", scope) == coverage(lite, "c", scope), scope
            (g,) = coverage(pg, "c", YIDU_T2).groups
            assert (g.targets, g.covered, g.uncovered) == (0, 0, [])
            (g,) = coverage(pg, "c").groups
            assert (g.targets, g.covered, g.uncovered) == (2, 1, [DANG_V1])
        finally:
            pg.dispose()
            lite.dispose()


def test_a_write_behind_refused_names_no_dead_letter(caplog) -> None:
    """The dead-letter log line waits for the commit (tests/unit/test_dead_letter_log.py):
    here a batch written behind, whose write another worker's commit refuses."""
    from tests.unit.test_dead_letter_log import batch, engine_with_units, said, stored

    with fresh_database() as url:
        engine = engine_with_units(None, url)
        try:
            applier = BatchApplier(engine)
            writer = WriteBehind(applier)
            held = HeldWrites(applier)
            caplog.set_level(logging.WARNING, logger="services.aggregate.apply")
            writer.apply(batch())
            assert said(caplog) == []  # folded, in flight: not stored yet
            BatchApplier(engine).apply(batch())  # another worker, given the partition
            held.release.set()
            writer.flush()  # refused, applied again: nothing left to apply
            assert len(said(caplog)) == 1, said(caplog)  # the other worker's, once
            assert stored(engine) == [(0, 1)] and applier.positions[0] == 2
            writer.close()
        finally:
            engine.dispose()
