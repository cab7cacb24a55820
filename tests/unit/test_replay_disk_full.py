"""`duhub replay` onto a full disk stops with the reason, exit 2, and a rerun finishes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from duhub.cli import replay as replay_cli
from duhub.cli.main import parser
from services.aggregate import apply
from tests.unit.builders import YIDU_V1, Pipeline, at, hierarchy, visit


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = Pipeline.open()
    p.clock.now = at("2023-02-01")
    p.publish(hierarchy(), allow_reference=True)
    p.clock.now += 10**9
    # Enough rows to need pages past the schema's.
    p.publish(
        [
            visit(YIDU_V1, event_id=f"v{seq}", seq=seq, occurred_at=at("2022-11-01"))
            for seq in range(1, 401)
        ]
    )
    p.tailer.catch_up()
    yield p
    p.close()


def _replay(*argv: str) -> int:
    return replay_cli.run(parser().parse_args(["replay", *argv]))


def test_a_replay_onto_a_full_disk_stops_naming_into_and_a_rerun_finishes(
    hub: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Before, it printed "read model unreachable (… database or disk is full); retrying"
    # once a second (for DB_OUTAGE_LIMIT_S, 10 minutes, then a traceback). Shortened here so
    # that without the fix this fails in seconds instead of hanging.
    monkeypatch.setattr(apply, "DB_OUTAGE_LIMIT_S", 3.0)
    real = replay_cli.open_engine

    def full(url: str, **kwargs: Any) -> Engine:
        # The schema and the replay's cut fit, the records do not: SQLite says "database or
        # disk is full" as on a full file system (SQLITE_FULL), without a small mount.
        engine = real(url, **kwargs)
        with engine.connect() as conn:
            pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)
        engine.dispose()

        @event.listens_for(engine, "connect")
        def _limit(dbapi: Any, _: Any) -> None:
            dbapi.execute(f"PRAGMA max_page_count = {pages + 1}")

        return engine

    monkeypatch.setattr(replay_cli, "open_engine", full)
    into = tmp_path / "r.db"
    args = ("--data-dir", str(hub.dir), "--into", f"sqlite:///{into}")
    with pytest.raises(SystemExit) as stopped:
        _replay(*args, "--no-compare")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"--into: the disk of {into} is full (database or disk is full)" in err, err
    assert "retrying" not in err
    # Space is back: the same command resumes and gives the live figures.
    monkeypatch.setattr(replay_cli, "open_engine", real)
    assert _replay(*args) == 0
    assert "equal: the live figures are exactly what the log gives" in capsys.readouterr().out
