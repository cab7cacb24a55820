"""Statistics by period in a time zone: a Beijing day is [16:00, 16:00) UTC, and an event at
07:00 Beijing time on 12-02 is counted on 12-02, at every depth (rollups with hour buckets at
the city and the counties, fact rows below them), in SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from duhub.projections.timegrid import periods
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from tests.infra import fresh_database
from tests.unit.builders import (
    CITY,
    DANG_V1,
    DAY,
    YIDU,
    YIDU_T1,
    YIDU_T2,
    YIDU_V1,
    Pipeline,
    at,
    hierarchy,
    kinds,
    sanction,
    talk,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
METRICS = ["talk_persons", "sanctioned_persons"]


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    if request.param == "sqlite":
        yield from _hub("")
        return
    with fresh_database() as url:
        yield from _hub(url)


def _hub(db_url: str) -> Iterator[Pipeline]:
    p = Pipeline.open(db_url=db_url)
    p.clock.now = at("2023-02-01")
    assert set(kinds(p.publish(hierarchy(), allow_reference=True))) == {"accepted"}
    try:
        yield p
    finally:
        p.close()


def publish(p: Pipeline, events: list[pb.Event]) -> None:
    for seq, e in enumerate(events, start=1):
        e.event_id, e.seq = f"e{seq}", seq
    assert set(kinds(p.publish(events))) == {"accepted"}
    p.tailer.catch_up()


def by(hub: Pipeline, scope: str, kind: str, lo: int, hi: int, zone=UTC):  # type: ignore[no-untyped-def]
    rows = statistics(hub.engine, ["talk_persons"], scope, "", lo, hi, kind, time_zone=zone)
    return [(r.key, r.values["talk_persons"]) for r in rows]


@pytest.mark.parametrize("scope", [CITY, YIDU, YIDU_T1, YIDU_V1])
def test_07_and_09_beijing_time_land_on_their_beijing_day(hub: Pipeline, scope: str) -> None:
    publish(
        hub,
        [
            talk(YIDU_V1, 1, occurred_at=at("2022-11-30T16:30:00")),  # 12-01 00:30 Beijing
            talk(YIDU_V1, 3, occurred_at=at("2022-12-01T23:00:00")),  # 12-02 07:00 Beijing
            talk(YIDU_V1, 5, occurred_at=at("2022-12-02T01:00:00")),  # 12-02 09:00 Beijing
            talk(YIDU_V1, 7, occurred_at=at("2022-12-31T17:00:00")),  # 2023-01-01 01:00
        ],
    )
    lo, hi = at("2022-11-30T16:00:00"), at("2022-12-03T16:00:00")  # Beijing 12-01 .. 12-04
    assert by(hub, scope, "day", lo, hi, SHANGHAI) == [
        ("2022-12-01", 1),
        ("2022-12-02", 8),
        ("2022-12-03", 0),
    ]
    assert by(hub, scope, "day", lo, hi, timezone(timedelta(hours=8))) == [
        ("2022-12-01", 1),
        ("2022-12-02", 8),
        ("2022-12-03", 0),
    ]
    # In UTC (the default, as before) the 07:00 visit is on 12-01, and 00:30 on 11-30.
    assert by(hub, scope, "day", lo, hi) == [
        ("2022-11-30", 1),
        ("2022-12-01", 3),
        ("2022-12-02", 5),
        ("2022-12-03", 0),
    ]
    lo, hi = at("2022-10-31T16:00:00"), at("2023-01-31T16:00:00")  # Beijing Nov .. Jan
    assert by(hub, scope, "month", lo, hi, SHANGHAI) == [
        ("2022-11-01", 0),
        ("2022-12-01", 9),
        ("2023-01-01", 7),
    ]
    assert by(hub, scope, "week", lo, hi, SHANGHAI)[4:6] == [("2022-11-28", 9), ("2022-12-05", 0)]
    assert by(hub, scope, "year", lo, hi, SHANGHAI) == [("2022-01-01", 9), ("2023-01-01", 7)]


UNITS = [CITY, YIDU, YIDU_T1, YIDU_T2, YIDU_V1, DANG_V1]


def test_the_rows_add_up_and_each_is_the_question_over_its_period(hub: Pipeline) -> None:
    rng = random.Random(8)
    events = []
    for _ in range(150):
        t = at("2022-10-20") + rng.randrange(80 * DAY // (60 * 10**9)) * 60 * 10**9
        unit = rng.choice(UNITS)
        make = talk if rng.random() < 0.6 else sanction
        events.append(make(unit, rng.randint(1, 9), occurred_at=t))
    publish(hub, events)
    # Bounds off the hour too: the sub-hour edges are read from fact rows.
    lo, hi = at("2022-10-25T05:17:00"), at("2023-01-03T19:40:00")
    zones = [SHANGHAI, ZoneInfo("America/Sao_Paulo"), timezone(timedelta(hours=5, minutes=30))]
    for scope in (CITY, YIDU, YIDU_T1, YIDU_V1):
        total = statistics(hub.engine, METRICS, scope, "", lo, hi)[0].values
        for zone in zones:
            for kind in ("day", "week", "month"):
                rows = statistics(hub.engine, METRICS, scope, "", lo, hi, kind, time_zone=zone)
                spans = periods(kind, lo, hi, zone)
                assert [r.key for r in rows] == [k for k, _, _ in spans]
                assert {x: sum(r.values[x] for r in rows) for x in METRICS} == total
                for r, (_, a, b) in zip(rows, spans, strict=True):
                    alone = statistics(hub.engine, METRICS, scope, "", a, b)[0]
                    assert r.values == alone.values, (scope, zone, kind, r.key)
                    assert r.events == alone.events
    assert sum(total.values()) > 0


@pytest.mark.parametrize("scope", [CITY, YIDU_T1])
def test_twenty_years_of_beijing_weeks_are_answered(hub: Pipeline, scope: str) -> None:
    """A Beijing week is no run of whole UTC days: its rollup segments and fact windows are
    one statement branch each, and 1,200 weeks were more than SQLite takes in one compound
    SELECT (500): the dashboard answered "internal error" for a window from 2000."""
    publish(
        hub,
        [
            talk(YIDU_V1, 2, occurred_at=at("2000-01-02T17:00:00")),  # Monday 01:00 Beijing
            talk(YIDU_V1, 3, occurred_at=at("2022-11-27T15:00:00")),  # Sunday 23:00 Beijing
        ],
    )
    lo, hi = at("1999-12-31T16:00:00"), at("2022-12-01")
    rows = by(hub, scope, "week", lo, hi, SHANGHAI)
    assert len(rows) == len(periods("week", lo, hi, SHANGHAI)) > 1150
    assert [r for r in rows if r[1]] == [("2000-01-03", 2), ("2022-11-21", 3)]
