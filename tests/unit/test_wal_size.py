"""The read model's WAL is cut back once checkpointed: readers holding a snapshot (a dashboard
asking as of early moments, many at once) kept its checkpoints from finishing, it grew to
51 MB in a minute, and stayed that size until the hub stopped (soak probe, 2026-12-06)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from duhub.readmodel.engine import WAL_SIZE_LIMIT, open_engine


def test_a_wal_grown_under_a_held_reader_is_cut_back_after_it_goes(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    wal = tmp_path / "rm.db-wal"
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (x BLOB)"))
    reader = engine.connect()
    reader.execute(text("BEGIN"))
    reader.execute(text("SELECT count(*) FROM filler")).scalar()  # a snapshot held
    for _ in range(6):  # 24 MiB, none of it checkpointed past the reader's snapshot
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO filler VALUES (randomblob(4 * 1024 * 1024))"))
    grown = os.path.getsize(wal)
    assert grown > 2 * WAL_SIZE_LIMIT
    reader.rollback()
    reader.close()
    with engine.begin() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
    with engine.begin() as conn:  # the next write starts the WAL over, and cuts it
        conn.execute(text("INSERT INTO filler VALUES (x'00')"))
    assert os.path.getsize(wal) <= WAL_SIZE_LIMIT, (grown, os.path.getsize(wal))
    engine.dispose()
