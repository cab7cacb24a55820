"""A read model made before an index existed gets it when opened, and answers the same."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from duhub.readmodel.engine import open_engine

INDEX = "ix_coverage_campaign_rows"


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {name for (name,) in rows}


def test_an_index_missing_from_an_older_read_model_is_added_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    open_engine(f"sqlite:///{path}").dispose()
    assert INDEX in _indexes(path)
    with sqlite3.connect(path) as db:  # as an earlier version made it
        db.execute("INSERT INTO coverage VALUES ('c1', 'g1', 'u1', 5, 7), ('c1', 'g2', 'u2', 6, 8)")
        db.execute(f"DROP INDEX {INDEX}")
    assert INDEX not in _indexes(path)

    engine = open_engine(f"sqlite:///{path}")
    try:
        assert INDEX in _indexes(path)
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT group_id, unit_id, first_at FROM coverage "
                "WHERE campaign_id = 'c1'"
            ).fetchall()
            rows = conn.exec_driver_sql(
                "SELECT group_id, unit_id, first_at FROM coverage WHERE campaign_id = 'c1'"
            ).fetchall()
        assert any(INDEX in str(step) for step in plan)
        assert sorted(rows) == [("g1", "u1", 5), ("g2", "u2", 6)]
    finally:
        engine.dispose()
    open_engine(f"sqlite:///{path}").dispose()  # opening again is a no-op
    assert INDEX in _indexes(path)
