"""Opening a PostgreSQL read model beside a running worker: it adds a missing index, and
waits on no table a worker is writing when nothing is missing; an older read model gets its
year rows."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg2
import pytest

from duhub.projections.effects import Counted
from duhub.projections.timegrid import YEAR
from duhub.readmodel.engine import open_engine
from duhub.readmodel.layout import LayoutRefused, trust_written
from duhub.readmodel.schema import unit_path
from duhub.readmodel.writer import write_batch
from tests.infra import fresh_database

INDEX = "ix_coverage_campaign_counties"
LOCK_WAIT_S = 20


def _has_index(url: str) -> bool:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s", (INDEX,))
        return cur.fetchone()[0] == 1


def test_open_adds_a_missing_index_and_waits_on_no_writer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with fresh_database() as url:
        open_engine(url).dispose()
        assert _has_index(url)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP INDEX {INDEX}")  # as an earlier version made the read model
        assert not _has_index(url)
        open_engine(url).dispose()
        assert _has_index(url)

        # A worker's batch in flight holds its tables against CREATE INDEX (even IF NOT
        # EXISTS): an open must not ask for an index it has, or it waits for the batch.
        writer = psycopg2.connect(url)
        try:
            with writer.cursor() as cur:
                cur.execute("INSERT INTO coverage VALUES ('c', 'g', 'u', 1, 1)")
            # The open's connections give up on a lock after LOCK_WAIT (libpq reads
            # PGOPTIONS): an open that waited on the batch takes all of it, and one that did
            # not is done well before, even on a loaded host (a 3 s bound was once missed).
            monkeypatch.setenv("PGOPTIONS", f"-c lock_timeout={LOCK_WAIT_S}s")
            began = time.monotonic()
            open_engine(url).dispose()
            assert time.monotonic() - began < LOCK_WAIT_S
        finally:
            writer.rollback()
            writer.close()


def test_open_brings_an_older_read_model_up_to_this_layout() -> None:
    """Year rows summed and coverage rows given their counties, as on SQLite
    (tests/unit/test_readmodel_layout.py, test_readmodel_upgrade.py), through PostgreSQL."""
    with fresh_database() as url:
        made = _counted(
            url,
            ("c", "k", "t"),
            [(455_000, "a", 1), (455_100, "b", 2), (460_000, "a", 3), (470_000, "a", 4)],
        )
        assert sorted({r[0] for r in made if r[1] == YEAR}) == ["c", "k"]
        with psycopg2.connect(url) as conn, conn.cursor() as cur:  # as an earlier version left it
            _forget_years(cur)
            cur.execute("ALTER TABLE coverage DROP COLUMN county_id")  # its index goes with it
            cur.execute(
                "CREATE INDEX ix_coverage_campaign_rows ON coverage "
                "(campaign_id, group_id, unit_id, first_at, first_recorded_at)"
            )
            cur.execute(
                "INSERT INTO coverage VALUES ('c1', 'g', 't', 5, 7), ('c1', 'g', 'c', 4, 6)"
            )
        assert not _has_index(url)
        open_engine(url).dispose()
        assert _rollups(url) == made
        assert _has_index(url)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT unit_id, county_id FROM coverage ORDER BY 1")
            assert cur.fetchall() == [("c", ""), ("t", "k")]
            cur.execute(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_coverage_campaign_rows'"
            )
            assert cur.fetchone() == (0,)
        open_engine(url).dispose()
        assert _rollups(url) == made


def _counted(url: str, path: tuple[str, ...], facts: list[tuple[int, str, int]]) -> list:  # type: ignore[type-arg]
    """Register the units of `path` and count `facts` (hour since the epoch, area, value) for
    its last unit in a fresh read model at `url`; return its rollup rows."""
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            for depth, unit_id in enumerate(path):
                conn.exec_driver_sql(
                    "INSERT INTO units VALUES (%s, %s, %s, %s, %s, 0, false, false)",
                    (
                        unit_id,
                        path[depth - 1] if depth else "",
                        depth + 1,
                        unit_id,
                        unit_path(path[: depth + 1]),
                    ),
                )
        hour = 3_600_000_000_000
        effects = [
            Counted(path, "visits", area, at * hour, value, f"e{i}", 1)
            for i, (at, area, value) in enumerate(facts)
        ]
        write_batch(engine, effects, {})
    finally:
        engine.dispose()
    return _rollups(url)


def _forget_years(cur) -> None:  # type: ignore[no-untyped-def]
    """Take the read model back to before year buckets: no year rows, no layout applied."""
    cur.execute(f"DELETE FROM rollups WHERE grain = {YEAR}")
    cur.execute("DELETE FROM layout")


def _rollups(url: str) -> list[tuple[object, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM rollups ORDER BY 1, 2, 3, 4, 5")
        return cur.fetchall()


def test_processes_opening_an_older_read_model_at_once_add_its_year_rows_once() -> None:
    """The change is claimed by a row in `layout`: whoever opens first applies it, the others
    wait for that row and leave it; the year rows are not summed twice."""
    with fresh_database() as url:
        made = _counted(url, ("c", "k"), [(455_000 + i * 97, "a", 1) for i in range(2000)])
        with psycopg2.connect(url) as conn, conn.cursor() as cur:  # as an earlier version left it
            _forget_years(cur)
        opener = f"from duhub.readmodel.engine import open_engine; open_engine({url!r}).dispose()"
        procs = [subprocess.Popen([sys.executable, "-c", opener]) for _ in range(4)]
        assert [p.wait(timeout=60) for p in procs] == [0] * 4
        assert _rollups(url) == made


def test_a_read_model_an_older_worker_wrote_since_is_refused() -> None:
    """As on SQLite (tests/unit/test_readmodel_rollback.py), through PostgreSQL and the
    compare-and-set a Kafka worker moves its positions with: an older worker's batch moves
    them without `layout_offset`, written around the year rows, and a start of this build
    refuses the read model instead of serving its figures."""
    with fresh_database() as url:
        _counted(url, ("c", "k"), [(455_000, "a", 1)])
        engine = open_engine(url)
        try:
            hour = 3_600_000_000_000
            batch = [Counted(("c", "k"), "visits", "a", 455_001 * hour, 2, "e9", 1)]
            write_batch(engine, batch, {0: 4}, expected={})
            write_batch(engine, batch[:0], {0: 7}, expected={0: 4})
        finally:
            engine.dispose()
        open_engine(url).dispose()  # what this build wrote opens
        with psycopg2.connect(url) as conn, conn.cursor() as cur:  # as an older worker's batch
            cur.execute("UPDATE rollups SET value = value + 5 WHERE grain <> %s", (YEAR,))
            cur.execute(
                "UPDATE log_positions SET next_offset = 11 WHERE partition = 0 AND next_offset = 7"
            )
        with pytest.raises(
            LayoutRefused, match="partition 0 at 11, left at 7 by this layout's writers"
        ) as refused:
            open_engine(url)
        assert "the read model postgresql://duhub:***@" in str(refused.value)  # as given
        # A writer of this build already running writes on: the evidence stays.
        engine = open_engine(url, create=False)
        try:
            write_batch(engine, batch[:0], {0: 13}, expected={0: 11})
        finally:
            engine.dispose()
        with pytest.raises(LayoutRefused, match="partition 0 at 13, left at 7"):
            open_engine(url)
        # `duhub readmodel trust-writes` finds the rows wrong (the year rows left behind)
        # and takes nothing; rows as a recent build writes them are taken, and it opens.
        engine = open_engine(url, create=False)
        try:
            with pytest.raises(LayoutRefused, match="year rows differ from their months' sums"):
                trust_written(engine)
            with psycopg2.connect(url) as conn, conn.cursor() as cur:
                cur.execute("UPDATE rollups SET value = value - 5 WHERE grain <> %s", (YEAR,))
            assert trust_written(engine) == [(0, 13, 7)]
        finally:
            engine.dispose()
        open_engine(url).dispose()
        with psycopg2.connect(url) as conn, conn.cursor() as cur:  # and a newer build's layout
            cur.execute("INSERT INTO layout VALUES ('hour-sketches', 1)")
        with pytest.raises(LayoutRefused, match=r"\(hour-sketches\): a newer duhub build"):
            open_engine(url)
