"""A read model made by an earlier version gets what this one reads when opened: the county of
each coverage row, and the index on it in place of the one it replaces."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from duhub.readmodel.engine import open_engine

INDEX, OLD_INDEX = "ix_coverage_campaign_counties", "ix_coverage_campaign_rows"


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {name for (name,) in rows}


def test_coverage_rows_of_an_older_read_model_get_their_counties_and_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    open_engine(f"sqlite:///{path}").dispose()
    assert INDEX in _indexes(path)
    with sqlite3.connect(path) as db:  # as an earlier version made it
        db.execute(f"DROP INDEX {INDEX}")
        db.execute("ALTER TABLE coverage DROP COLUMN county_id")
        db.execute("ALTER TABLE coverage DROP COLUMN first_event_id")
        db.execute(
            f"CREATE INDEX {OLD_INDEX} ON coverage "
            "(campaign_id, group_id, unit_id, first_at, first_recorded_at)"
        )
        db.execute("DELETE FROM layout")
        db.executemany(
            "INSERT INTO units VALUES (?, ?, 1, ?, ?, 0, 0, 0)",
            [("c", "", "c", "/c/"), ("k", "c", "k", "/c/k/"), ("v", "k", "v", "/c/k/t/v/")],
        )
        db.execute(
            "INSERT INTO coverage VALUES ('c1', 'g1', 'v', 5, 7), ('c1', 'g2', 'k', 6, 8), "
            "('c1', 'g2', 'c', 4, 9)"
        )
    assert INDEX not in _indexes(path)

    engine = open_engine(f"sqlite:///{path}")
    try:
        assert INDEX in _indexes(path) and OLD_INDEX not in _indexes(path)
        with engine.connect() as conn:
            sql = (
                "SELECT group_id, county_id, count(*), max(first_at) FROM coverage "
                "WHERE campaign_id = 'c1' GROUP BY group_id, county_id"
            )
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).fetchall()
            rows = conn.exec_driver_sql(sql).fetchall()
        assert any(INDEX in str(step) for step in plan)
        assert sorted(rows) == [("g1", "k", 1, 5), ("g2", "", 1, 4), ("g2", "k", 1, 6)]
    finally:
        engine.dispose()
    open_engine(f"sqlite:///{path}").dispose()  # opening again is a no-op
    assert INDEX in _indexes(path) and OLD_INDEX not in _indexes(path)


def test_an_older_read_model_gets_a_first_covered_row_per_covered_target(tmp_path: Path) -> None:
    """Before `coverage_firsts`, as-of answers read a target's earliest record and event
    times from its coverage row: the upgrade gives each covered target that one row, so its
    as-of answers stay what they were (a replay rebuilds them exactly)."""
    path = tmp_path / "old.db"
    open_engine(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as db:  # as an earlier version made it
        db.execute("DROP TABLE coverage_firsts")
        db.execute("ALTER TABLE coverage DROP COLUMN first_event_id")
        db.execute("DELETE FROM layout WHERE name IN ('coverage-firsts', 'coverage-events')")
        db.execute(
            "INSERT INTO coverage VALUES ('c1', 'g1', 'v', 5, 7, 'k'), "
            "('c1', 'g2', 'k', 6, 8, 'k'), ('c2', 'g1', 'v', 9, 3, 'k')"
        )
    open_engine(f"sqlite:///{path}").dispose()
    open_engine(f"sqlite:///{path}").dispose()  # opening again adds nothing
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT campaign_id, group_id, unit_id, recorded_at, county_id, first_at "
            "FROM coverage_firsts"
        ).fetchall()
    assert sorted(rows) == [
        ("c1", "g1", "v", 7, "k", 5),
        ("c1", "g2", "k", 8, "k", 6),
        ("c2", "g1", "v", 3, "k", 9),
    ]
