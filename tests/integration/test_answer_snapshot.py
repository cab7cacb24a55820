"""An answer read in several statements sees one state of the read model: a batch the
aggregator commits between them counts in all of them or in none.

Each test commits a batch in the middle of an answer (right after its first read of the
figures) and checks that the answer is the one the state before gives: an as-of figure stays
what it was (the audit question), a listed explanation adds up to its total, a group's covered
and uncovered targets add up to its targets. On SQLite and on PostgreSQL (their snapshots are
made differently)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest
from sqlalchemy import event

from duhub.readmodel import coverage as cov
from duhub.readmodel import lineage
from duhub.readmodel import statistics as stats
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import (
    DANG_V1,
    YIDU,
    YIDU_T1,
    YIDU_V1,
    Pipeline,
    at,
    campaign,
    group,
    hierarchy,
    pipeline_on,
    visit,
)

NOW = at("2023-02-01")
AS_OF = NOW + 100
LO, HI = at("2022-11-05T08:30:00"), at("2022-11-20T10:15:00")


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    with pipeline_on(request.param) as p:
        yield _filled(p)


def _filled(p: Pipeline) -> Pipeline:
    p.clock.now = NOW
    p.publish(hierarchy(), allow_reference=True)
    p.publish(
        [
            campaign(
                "c", [group("g", pb.TIER_CITY, YIDU_V1, YIDU_T1, DANG_V1)], event_id="camp", seq=1
            )
        ]
    )
    # In the hours after the period's start, in its whole days, in its sub-hour end.
    for i, when in enumerate(
        ["2022-11-05T09:00:00", "2022-11-10T12:00:00", "2022-11-20T10:05:00"], start=2
    ):
        p.clock.now = NOW + i
        p.publish([visit(YIDU_V1, "c", "g", event_id=f"v{i}", seq=i, occurred_at=at(when))])
    p.tailer.catch_up()
    return p


def _late(p: Pipeline) -> Callable[[], None]:
    """Commit a batch recorded an hour later: a visit in the period's whole days, one in its
    sub-hour end (it covers a second target of the group)."""

    def commit() -> None:
        p.clock.now = NOW + 3600 * 10**9
        p.publish(
            [
                visit(
                    YIDU_V1,
                    "c",
                    "g",
                    event_id="late1",
                    seq=10,
                    occurred_at=at("2022-11-12T00:00:00"),
                ),
                visit(
                    YIDU_T1,
                    "c",
                    "g",
                    event_id="late2",
                    seq=11,
                    occurred_at=at("2022-11-20T10:07:00"),
                ),
            ]
        )
        p.tailer.catch_up()

    return commit


@contextmanager
def commit_after_first_read(
    p: Pipeline, module: ModuleType, table: str, commit: Callable[[], None]
) -> Iterator[None]:
    """Run `commit` once, right after the answer's first statement reading `table` (through
    the module's plain DB-API rows, or through SQLAlchemy)."""
    done: list[bool] = []

    def after(sql: str) -> None:
        if not done and f"FROM {table}" in sql:
            done.append(True)
            commit()

    plain = module.plain_rows if hasattr(module, "plain_rows") else None

    def plain_rows(conn, sql, params=()):  # type: ignore[no-untyped-def]
        rows = plain(conn, sql, params)  # type: ignore[misc]
        after(sql)
        return rows

    def on_execute(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        after(statement)

    with pytest.MonkeyPatch.context() as mp:
        if plain is not None:
            mp.setattr(module, "plain_rows", plain_rows)
        event.listen(p.engine, "after_cursor_execute", on_execute)
        try:
            yield
        finally:
            event.remove(p.engine, "after_cursor_execute", on_execute)
    assert done, f"no statement read {table}: the test did not interfere"


def test_an_as_of_figure_stays_what_it_was(hub: Pipeline) -> None:
    def visits() -> int:
        rows = stats.statistics(hub.engine, ["visits"], YIDU, "", LO, HI, as_of=AS_OF)
        return rows[0].values["visits"]

    assert visits() == 3
    with commit_after_first_read(hub, stats, "rollups", _late(hub)):
        # Rollups before the late batch, its facts subtracted after it: 2 + 2 - 2.
        assert visits() == 3
    assert visits() == 3  # and after it, as at any time


def test_a_figure_is_of_one_state(hub: Pipeline) -> None:
    def visits() -> int:
        return stats.statistics(hub.engine, ["visits"], YIDU, "", LO, HI)[0].values["visits"]

    with commit_after_first_read(hub, stats, "rollups", _late(hub)):
        # Rollups before the late batch, sub-hour facts after it would give 2 + 2.
        assert visits() == 3
    assert visits() == 5


def test_an_explanation_adds_up_to_its_total(hub: Pipeline) -> None:
    with commit_after_first_read(hub, lineage, "facts", _late(hub)):
        found = lineage.explain(hub.engine, "visits", YIDU, "", LO, HI, limit=100)
    assert (found.total, found.event_count) == (3, 3)
    assert sorted(c.event_id for c in found.events) == ["v2", "v3", "v4"]
    assert lineage.explain(hub.engine, "visits", YIDU, "", LO, HI, limit=100).total == 5


def test_coverage_counts_and_lists_one_state(hub: Pipeline) -> None:
    cov._TARGETS.clear()
    with commit_after_first_read(hub, cov, "coverage", _late(hub)):
        rep = cov.coverage(hub.engine, "c", "")
    g = rep.groups[0]
    assert (g.targets, g.covered, g.uncovered) == (3, 1, [YIDU_T1, DANG_V1])
    g = cov.coverage(hub.engine, "c", "").groups[0]
    assert (g.covered, g.uncovered) == (2, [DANG_V1])


def test_a_period_and_the_one_before_are_of_one_state(hub: Pipeline) -> None:
    # The period before [LO, HI) is as long, ending at LO: a late visit in its sub-hour end
    # (read from the facts, after the rollups) and one in the period's whole days.
    before_lo = LO - (HI - LO)

    def late() -> None:
        hub.clock.now = NOW + 3600 * 10**9
        hub.publish(
            [
                visit(
                    YIDU_V1, event_id="late-before", seq=20, occurred_at=at("2022-11-05T08:10:00")
                ),
                visit(YIDU_V1, event_id="late-now", seq=21, occurred_at=at("2022-11-12T00:00:00")),
            ]
        )
        hub.tailer.catch_up()

    def both() -> tuple[int, int]:
        found = stats.figures(hub.engine, ["visits"], YIDU, "", LO, HI, compare_previous=True)
        assert found.previous == (before_lo, LO)
        row = found.rows[0]
        assert row.previous_values is not None
        return row.values["visits"], row.previous_values["visits"]

    with commit_after_first_read(hub, stats, "rollups", late):
        # Both periods as before the late batch: neither has its visit.
        assert both() == (3, 0)
    assert both() == (4, 1)
