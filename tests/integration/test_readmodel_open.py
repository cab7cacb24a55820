"""Opening a PostgreSQL read model beside a running worker: it adds a missing index, and
waits on no table a worker is writing when nothing is missing; an older read model gets its
year rows."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg2

from duhub.projections.effects import Counted
from duhub.projections.timegrid import YEAR
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import write_batch
from tests.infra import fresh_database

INDEX = "ix_coverage_campaign_counties"


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
            # The open's connections give up on a lock after 3 s (libpq reads PGOPTIONS):
            # were it to wait on the batch, it would fail here instead of hanging.
            monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=3s")
            began = time.monotonic()
            open_engine(url).dispose()
            assert time.monotonic() - began < 3
        finally:
            writer.rollback()
            writer.close()


def test_open_brings_an_older_read_model_up_to_this_layout() -> None:
    """Year rows summed and coverage rows given their counties, as on SQLite
    (tests/unit/test_readmodel_layout.py, test_readmodel_upgrade.py), through PostgreSQL."""
    with fresh_database() as url:
        engine = open_engine(url)
        try:
            with engine.begin() as conn:
                for unit_id, parent, level, path in (
                    ("c", "", 1, "/c/"),
                    ("k", "c", 2, "/c/k/"),
                    ("t", "k", 3, "/c/k/t/"),
                ):
                    conn.exec_driver_sql(
                        "INSERT INTO units VALUES (%s, %s, %s, %s, %s, 0, false, false)",
                        (unit_id, parent, level, unit_id, path),
                    )
            hour = 3_600_000_000_000
            write_batch(
                engine,
                [
                    Counted(("c", "k", "t"), "visits", area, at * hour, i, f"e{i}", 1)
                    for i, (at, area) in enumerate(
                        [(455_000, "a"), (455_100, "b"), (460_000, "a"), (470_000, "a")], 1
                    )
                ],
                {},
            )
            made = _rollups(url)
        finally:
            engine.dispose()
        assert sorted({r[0] for r in made if r[1] == YEAR}) == ["c", "k"]
        with psycopg2.connect(url) as conn, conn.cursor() as cur:  # as an earlier version left it
            cur.execute(f"DELETE FROM rollups WHERE grain = {YEAR}")
            cur.execute("DELETE FROM layout")
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


def _rollups(url: str) -> list[tuple[object, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM rollups ORDER BY 1, 2, 3, 4, 5")
        return cur.fetchall()


def test_processes_opening_an_older_read_model_at_once_add_its_year_rows_once() -> None:
    """The change is claimed by a row in `layout`: whoever opens first applies it, the others
    wait for that row and leave it; the year rows are not summed twice."""
    with fresh_database() as url:
        engine = open_engine(url)
        try:
            with engine.begin() as conn:
                for unit_id, parent, level, path in (("c", "", 1, "/c/"), ("k", "c", 2, "/c/k/")):
                    conn.exec_driver_sql(
                        "INSERT INTO units VALUES (%s, %s, %s, %s, %s, 0, false, false)",
                        (unit_id, parent, level, unit_id, path),
                    )
            hour = 3_600_000_000_000
            write_batch(
                engine,
                [
                    Counted(("c", "k"), "visits", "a", (455_000 + i * 97) * hour, 1, f"e{i}", 1)
                    for i in range(2000)
                ],
                {},
            )
        finally:
            engine.dispose()
        made = _rollups(url)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:  # as an earlier version left it
            cur.execute(f"DELETE FROM rollups WHERE grain = {YEAR}")
            cur.execute("DELETE FROM layout")
        opener = f"from duhub.readmodel.engine import open_engine; open_engine({url!r}).dispose()"
        procs = [subprocess.Popen([sys.executable, "-c", opener]) for _ in range(4)]
        assert [p.wait(timeout=60) for p in procs] == [0] * 4
        assert _rollups(url) == made
