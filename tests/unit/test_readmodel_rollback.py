"""A read model this build cannot trust is refused at open, not served: one an older build
wrote since this one did (its positions moved without `layout_offset`), and one a newer
build changed the layout of. Found by an upgrade probe (2026-12-06): an older build run again
on an upgraded read model wrote its rows around the year rollups and coverage_firsts, and
the current build served the wrong figures without a word."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from duhub.projections.effects import Counted
from duhub.projections.timegrid import MONTH
from duhub.readmodel.engine import open_engine
from duhub.readmodel.layout import REFILLED_FROM_LOG, LayoutRefused
from duhub.readmodel.writer import read_positions, write_batch

HOUR = 3_600_000_000_000
PATH = ("c", "k", "t")


def _counted(first: int, n: int) -> list[Counted]:
    return [
        Counted(PATH, "visits", "a", (455_000 + i) * HOUR, 1, f"e{i}", 1)
        for i in range(first, first + n)
    ]


def _written_by_this_build(path: Path) -> None:
    """Two batches, through both ways positions move (upsert, and compare-and-set)."""
    engine = open_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO units VALUES ('c', '', 1, 'c', '/c/', 0, 0, 0), "
                "('k', 'c', 2, 'k', '/c/k/', 0, 0, 0), ('t', 'k', 3, 't', '/c/k/t/', 0, 0, 0)"
            )
        write_batch(engine, _counted(0, 5), {0: 5})
        write_batch(engine, _counted(5, 4), {0: 9}, expected={0: 5})
    finally:
        engine.dispose()


def test_a_read_model_an_older_build_wrote_since_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    engine = open_engine(f"sqlite:///{path}")  # what this build wrote opens
    assert read_positions(engine) == {0: 9}
    engine.dispose()
    with sqlite3.connect(path) as db:  # as a build before year rollups wrote a batch
        db.execute(
            "INSERT INTO rollups VALUES ('c', ?, 'visits', 'a', 455100, 3, 3) "
            "ON CONFLICT DO UPDATE SET value = value + 3, events = events + 3",
            (MONTH,),
        )
        db.execute(
            "INSERT INTO log_positions (partition, next_offset) VALUES (0, 12) "
            "ON CONFLICT (partition) DO UPDATE SET next_offset = excluded.next_offset"
        )
    with pytest.raises(LayoutRefused) as refused:
        open_engine(f"sqlite:///{path}")
    message = str(refused.value)
    assert "written by a duhub build older than its layout" in message
    assert "partition 0 at 12, left at 9 by this layout's writers" in message
    assert "duhub replay --fresh" in message and "delete it" in message
    with pytest.raises(LayoutRefused):  # still: nothing was changed by the refusal
        open_engine(f"sqlite:///{path}")


def test_a_partition_an_older_build_added_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO log_positions (partition, next_offset) VALUES (1, 3)")
    with pytest.raises(LayoutRefused, match="partition 1 at 3, added by it"):
        open_engine(f"sqlite:///{path}")


def test_a_read_model_made_before_the_marks_gets_them_and_opens(tmp_path: Path) -> None:
    """Upgraded in place, as every change before: its positions are taken as this layout's."""
    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    with sqlite3.connect(path) as db:  # as a build before the marks left it
        db.execute("ALTER TABLE log_positions DROP COLUMN layout_offset")
        db.execute("DELETE FROM layout WHERE name = 'layout-marks'")
    engine = open_engine(f"sqlite:///{path}")
    engine.dispose()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT layout_offset FROM log_positions").fetchall() == [(9,)]


def test_a_layout_a_newer_build_made_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    with sqlite3.connect(path) as db:  # as a newer build left it
        db.execute("INSERT INTO layout VALUES ('hour-sketches', 1), ('audit-index', 2)")
    with pytest.raises(LayoutRefused) as refused:
        open_engine(f"sqlite:///{path}")
    message = str(refused.value)
    assert "(audit-index, hour-sketches)" in message and "a newer duhub build made them" in message
    with sqlite3.connect(path) as db:  # nothing applied or claimed on the way
        names = {n for (n,) in db.execute("SELECT name FROM layout")}
    assert {"hour-sketches", "audit-index"} <= names


@pytest.mark.parametrize("expected", [None, {0: 12}], ids=["upsert", "compare-and-set"])
def test_a_writer_running_when_an_older_build_wrote_does_not_wipe_it_out(
    tmp_path: Path, expected: dict[int, int] | None
) -> None:
    # A writer of this build, open while an older one wrote (a rolling upgrade, a worker of
    # each), moved layout_offset with its next batch: the next start found nothing to refuse.
    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    running = open_engine(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:  # the older build's batch
        db.execute("UPDATE log_positions SET next_offset = 12 WHERE partition = 0")
    write_batch(running, _counted(20, 3), {0: 15}, expected=expected)
    running.dispose()
    with pytest.raises(LayoutRefused, match="partition 0 at 15, left at 9 by this layout's"):
        open_engine(f"sqlite:///{path}")


def test_a_partition_this_build_adds_by_compare_and_set_opens(tmp_path: Path) -> None:
    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    engine = open_engine(f"sqlite:///{path}")
    write_batch(engine, _counted(30, 2), {0: 11, 1: 4}, expected={0: 9})
    engine.dispose()
    engine = open_engine(f"sqlite:///{path}")
    assert read_positions(engine) == {0: 11, 1: 4}
    engine.dispose()


def _older_build_wrote(path: Path) -> None:
    """A batch of the release before the layout marks: its rows right, no layout_offset."""
    with sqlite3.connect(path) as db:
        db.execute("UPDATE log_positions SET next_offset = 12 WHERE partition = 0")
        db.execute("INSERT INTO log_positions (partition, next_offset) VALUES (1, 3)")


def test_trust_writes_takes_what_a_recent_build_wrote(tmp_path: Path) -> None:
    # A rolling upgrade ran a worker of a recent build (every table known, not the marks)
    # beside this one: every start refused the read model, a rebuild the only way out.
    from tests.unit.test_ops_cli import duhub

    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    _older_build_wrote(path)
    with pytest.raises(LayoutRefused, match="'duhub readmodel trust-writes'"):
        open_engine(f"sqlite:///{path}")
    done = duhub("readmodel", "trust-writes", "--db", f"sqlite:///{path}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "partition 0 at 12 (left at 9): checked, taken as this layout's" in done.stdout
    assert "partition 1 at 3 (added by it): checked, taken as this layout's" in done.stdout
    engine = open_engine(f"sqlite:///{path}")
    assert read_positions(engine) == {0: 12, 1: 3}
    engine.dispose()
    # Its visit facts lack their campaigns, its dead letters their ids and sources: the
    # fills from the log run again at the next open with it.
    with sqlite3.connect(path) as db:
        names = {n for (n,) in db.execute("SELECT name FROM layout")}
    assert not names & set(REFILLED_FROM_LOG), names
    again = duhub("readmodel", "trust-writes", "--db", f"sqlite:///{path}")
    assert again.returncode == 0 and "nothing to take" in again.stdout, again.stdout


def test_trust_writes_refuses_a_missing_read_model_naming_the_option(tmp_path: Path) -> None:
    from tests.unit.test_ops_cli import duhub

    done = duhub("readmodel", "trust-writes", "--data-dir", str(tmp_path))
    assert done.returncode == 2 and "--data-dir: no read model at" in done.stderr, done.stderr
    assert not (tmp_path / "readmodel.db").exists()


def _layout_offsets(path: Path) -> list[tuple[int, int, int | None]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT partition, next_offset, layout_offset FROM log_positions ORDER BY 1"
        ).fetchall()


def test_trust_writes_refuses_rows_an_older_build_got_wrong(tmp_path: Path) -> None:
    # A build before the year rollups (2026-12-03) writes its months only: taken at the
    # operator's word, its figures were served wrong without a word (an upgrade probe).
    from tests.unit.test_ops_cli import duhub

    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO rollups VALUES ('c', ?, 'visits', 'a', 455100, 3, 3) "
            "ON CONFLICT DO UPDATE SET value = value + 3, events = events + 3",
            (MONTH,),
        )
        db.execute("UPDATE log_positions SET next_offset = 12 WHERE partition = 0")
    before = _layout_offsets(path)
    done = duhub("readmodel", "trust-writes", "--db", f"sqlite:///{path}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot be taken as this layout's: 1 year rows differ" in done.stderr, done.stderr
    assert "visits at c" in done.stderr and "rebuild it from the log" in done.stderr
    assert _layout_offsets(path) == before
    with pytest.raises(LayoutRefused):
        open_engine(f"sqlite:///{path}")


def test_trust_writes_refuses_a_newer_builds_layout_taking_nothing(tmp_path: Path) -> None:
    from tests.unit.test_ops_cli import duhub

    path = tmp_path / "readmodel.db"
    _written_by_this_build(path)
    _older_build_wrote(path)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO layout VALUES ('hour-sketches', 1)")
    before = _layout_offsets(path)
    done = duhub("readmodel", "trust-writes", "--db", f"sqlite:///{path}")
    assert done.returncode == 2 and "a newer duhub build made them" in done.stderr, done.stderr
    assert "taken" not in done.stdout
    assert _layout_offsets(path) == before
