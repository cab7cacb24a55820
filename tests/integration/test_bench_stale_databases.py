"""The benchmarks' start drops databases an interrupted run left, not one another run uses."""

from __future__ import annotations

import psycopg2
import pytest

from bench import common as c
from tests.infra import postgres_url


def _exists(admin: str, name: str) -> bool:
    conn = psycopg2.connect(admin)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None
    finally:
        conn.close()


def test_a_database_in_use_is_not_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two benchmark runs at once: the second one's start force-dropped the first's databases
    # mid-run (found by a helper running the freshness benchmark beside another).
    admin = postgres_url()
    monkeypatch.setattr(c, "PG_ADMIN", admin)
    prefix = c.unique("duhub_bench_probe_") + "_"
    url = c.create_database(prefix)
    name = url.rsplit("/", 1)[1]
    in_use = psycopg2.connect(url)
    try:
        c.drop_stale_databases(prefix)
        assert _exists(admin, name), "a database another run has open was dropped"
    finally:
        in_use.close()
    c.drop_stale_databases(prefix)
    assert not _exists(admin, name), "a database nobody uses was left"
