"""Dead letters are listed by source and time (`duhub deadletters`, RPC ListDeadLetters):
each row keeps the source its value names and when the hub recorded it. Before 2026-12-07
the rows kept neither, and nothing listed them: a county read the shared dead-letter topic
with kcat, every county's refusals in it. A read model of an earlier layout gets both from
the log, once, and `duhub replay` still finds it equal to what the log gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from duhub.bootstrap import Hub, HubConfig
from duhub.readmodel.dead_letters import list_dead_letters
from duhub.readmodel.statistics import QueryError
from tests.unit.builders import CITY, DANG, YIDU, Pipeline
from tests.unit.refused import REFUSED, T2, opened, refuse
from tests.unit.test_ops_cli import duhub


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = opened()
    yield p
    p.close()


def listed(p: Pipeline, **asked: object) -> list[tuple[int, str, str, int | None]]:
    return [
        (d.offset, d.event_id, d.source, d.recorded_at)
        for d in list_dead_letters(p.engine, **asked).letters  # type: ignore[arg-type]
    ]


def test_dead_letters_are_listed_newest_first_with_their_sources(hub: Pipeline) -> None:
    offsets = refuse(hub)
    rows = {o: (o, e, s, at) for o, (_, e, s, at) in zip(offsets, REFUSED, strict=True)}
    yidu_4, dang_3, garbage, yidu_5 = (rows[o] for o in offsets)
    # Newest first; the record naming no time (no Event) last.
    assert listed(hub) == [yidu_5, dang_3, yidu_4, garbage]
    assert listed(hub, source=YIDU) == [yidu_5, yidu_4]
    # A county's subtree: its own source's only; the city's: every source that is a unit.
    assert listed(hub, within=YIDU) == [yidu_5, yidu_4]
    assert listed(hub, within=CITY) == [yidu_5, dang_3, yidu_4]
    assert listed(hub, source=DANG, within=YIDU) == []
    assert listed(hub, since=T2) == [yidu_5, dang_3]
    first = list_dead_letters(hub.engine, limit=1)
    assert (first.total, first.truncated, first.letters[0].offset) == (4, True, yidu_5[0])
    reasons = {d.offset: d.reason for d in list_dead_letters(hub.engine).letters}
    assert reasons[yidu_4[0]] == "accountability_imposed.persons: must be at least 1"
    with pytest.raises(QueryError, match="^limit: at most 50000"):
        list_dead_letters(hub.engine, limit=50_001)


def as_written_before(p: Pipeline) -> None:
    """Make the read model what an earlier layout wrote: dead_letters without the source and
    time columns, and no record of this layout's changes to it."""
    with p.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_dead_letters_recorded_at"))
        conn.execute(text("ALTER TABLE dead_letters DROP COLUMN source"))
        conn.execute(text("ALTER TABLE dead_letters DROP COLUMN recorded_at"))
        conn.execute(
            text("DELETE FROM layout WHERE name IN ('dead-letter-columns', 'dead-letter-sources')")
        )


def test_a_read_model_of_an_earlier_layout_gets_its_sources_from_the_log(hub: Pipeline) -> None:
    refuse(hub)
    written = listed(hub)
    as_written_before(hub)
    opened_again = Hub(HubConfig(hub.dir, listen="127.0.0.1:0"))
    try:
        assert listed(hub) == written
        assert [s for _, _, s, _ in written] == [YIDU, DANG, YIDU, ""]
    finally:
        opened_again.stop()


def test_replay_finds_a_read_model_of_an_earlier_layout_equal(
    hub: Pipeline, tmp_path: Path
) -> None:
    refuse(hub)
    as_written_before(hub)
    hub.engine.dispose()
    into = f"sqlite:///{tmp_path / 'replay.db'}"
    done = duhub("replay", "--data-dir", str(hub.dir), "--into", into)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equal: the live figures are exactly what the log gives" in done.stdout
    assert [d.source for d in list_dead_letters(hub.engine).letters] == [YIDU, DANG, YIDU, ""]
