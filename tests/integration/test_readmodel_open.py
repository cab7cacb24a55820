"""Opening a PostgreSQL read model beside a running worker: it adds a missing index, and
waits on no table a worker is writing when nothing is missing."""

from __future__ import annotations

import time

import psycopg2

from duhub.readmodel.engine import open_engine
from tests.infra import fresh_database

INDEX = "ix_coverage_campaign_rows"


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
