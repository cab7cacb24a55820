"""A read model made before year buckets existed gets them when opened, summed from its month
rows: the same rows the writes make, once, whoever opens it first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from duhub.projections.timegrid import YEAR
from duhub.readmodel.engine import open_engine
from duhub.readmodel.statistics import statistics
from tests.unit.builders import CITY, DANG, DANG_V1, YIDU, YIDU_V1, Pipeline, at, hierarchy, visit

TIMES = [
    "2022-03-04",
    "2022-12-31T23:59:59",
    "2023-01-01",
    "2023-07-09T10:00:00",
    "2024-02-29T12:00:00",
]


def _rollups(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM rollups ORDER BY 1, 2, 3, 4, 5").fetchall()


def _answers(url: str) -> list[object]:
    engine = open_engine(url, create=False)
    try:
        return [
            statistics(engine, ["visits"], scope, "", lo, hi, group_by)
            for scope in ("", YIDU)
            for lo, hi in ((None, None), (at("2022-01-01"), at("2024-01-01")))
            for group_by in ("", "unit")
        ]
    finally:
        engine.dispose()


def test_year_rows_missing_from_an_older_read_model_are_summed_on_open() -> None:
    p = Pipeline.open()
    try:
        p.clock.now = at("2025-01-01")
        p.publish(hierarchy(), allow_reference=True)
        p.publish(
            [
                visit(unit, event_id=f"v{i}", seq=i, occurred_at=at(t), area=area)
                for i, (unit, t, area) in enumerate(
                    [
                        (u, t, a)
                        for u in (YIDU_V1, DANG_V1)
                        for t in TIMES
                        for a in ("vaccination", "ecology")
                    ],
                    start=1,
                )
            ]
        )
        p.tailer.catch_up()
        path = p.dir / "readmodel.db"
        url = f"sqlite:///{path}"
        made = _rollups(path)
        years = [r for r in made if r[1] == YEAR]
        # The city's and the counties' years only, each the sum of its months.
        assert {r[0] for r in years} == {CITY, YIDU, DANG}
        assert sum(r[5] for r in years if r[0] == CITY) == 2 * len(TIMES) * 2
        answers = _answers(url)
        p.engine.dispose()

        with sqlite3.connect(path) as db:  # as an earlier version left it
            db.execute(f"DELETE FROM rollups WHERE grain = {YEAR}")
            db.execute("DELETE FROM layout")
        assert _answers(url) != answers  # without them the years read as empty

        open_engine(url).dispose()
        assert _rollups(path) == made
        assert _answers(url) == answers
        open_engine(url).dispose()  # applied once: opening again adds nothing
        assert _rollups(path) == made
    finally:
        p.close()
