"""A campaign's visits per group and tier for a period: "the 7 city groups made X visits this
week; group N made Y". The visit facts keep the campaign and group each visit names; a read
model of an earlier version gets them from the log once, and `duhub replay` still finds it
equal to what the log gives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from duhub.bootstrap import Hub, HubConfig
from duhub.readmodel.engine import open_engine
from duhub.readmodel.fact_campaigns import fill_fact_campaigns
from duhub.readmodel.group_figures import GroupFigures, group_figures
from duhub.readmodel.statistics import NotFound, QueryError
from duhub.v1 import events_pb2 as pb
from tests.infra import fresh_database
from tests.unit.builders import (
    DANG,
    DANG_T1,
    YIDU,
    YIDU_T1,
    Pipeline,
    at,
    campaign,
    group,
    hierarchy,
    kinds,
    visit,
)
from tests.unit.test_ops_cli import duhub

# The week of 2022-11-07 in Beijing time (UTC+8): [Mon 00:00, next Mon 00:00).
WEEK = (at("2022-11-06T16:00:00"), at("2022-11-13T16:00:00"))
GROUPS = [
    group("city-2", pb.TIER_CITY, DANG, name="市第二督导组"),
    group("city-1", pb.TIER_CITY, YIDU, name="市第一督导组"),
    group("yidu", pb.TIER_COUNTY, YIDU_T1, name="宜都市督导组"),
]
# (unit, campaign, group, event time): Beijing's Monday 01:00 starts the week, its next
# Monday 01:00 is past it (both on the other side of the UTC week's edges).
VISITS = [
    (YIDU, "c1", "city-1", at("2022-11-06T17:00:00")),
    (YIDU, "c1", "city-1", at("2022-11-09T03:00:00")),
    (YIDU_T1, "c1", "yidu", at("2022-11-10T03:00:00")),
    (DANG, "c1", "city-2", at("2022-11-13T17:00:00")),  # next week in Beijing
    (DANG_T1, "", "", at("2022-11-09T03:00:00")),  # of no campaign
    (DANG, "c2", "other", at("2022-11-09T03:00:00")),  # another campaign's
]


def publish(p: Pipeline, events: list[pb.Event], now: str) -> None:
    p.clock.now = at(now)
    for e in events:
        p.seq = getattr(p, "seq", 0) + 1
        e.event_id, e.seq = f"e{p.seq}", p.seq
    assert set(kinds(p.publish(events))) == {"accepted"}
    p.tailer.catch_up()


def opened(db_url: str = "") -> Pipeline:
    p = Pipeline.open(db_url=db_url)
    p.clock.now = at("2022-11-01")
    assert set(kinds(p.publish(hierarchy(), allow_reference=True))) == {"accepted"}
    publish(p, [campaign("c1", GROUPS), campaign("c2", [group("other", 2, DANG)])], "2022-11-04")
    publish(p, [visit(u, c, g, occurred_at=t) for u, c, g, t in VISITS[:3]], "2022-11-11")
    publish(p, [visit(u, c, g, occurred_at=t) for u, c, g, t in VISITS[3:]], "2022-11-20")
    return p


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = opened()
    yield p
    p.close()


def table(f: GroupFigures) -> list[tuple[str, str, int, int]]:
    """(key, name, tier, visits) of each row, then of each tier, then the total."""
    rows = [*f.rows, *f.tiers, f.total]
    return [(r.key, r.name, int(r.tier or 0), r.values["visits"]) for r in rows]


def test_visits_per_group_in_the_campaigns_order_with_tiers_and_total(hub: Pipeline) -> None:
    f = group_figures(hub.engine, "c1", ["visits"], lo=WEEK[0], hi=WEEK[1], group_by="group")
    assert table(f) == [
        ("city-2", "市第二督导组", pb.TIER_CITY, 0),
        ("city-1", "市第一督导组", pb.TIER_CITY, 2),
        ("yidu", "宜都市督导组", pb.TIER_COUNTY, 1),
        ("city", "city groups", pb.TIER_CITY, 2),
        ("county", "county groups", pb.TIER_COUNTY, 1),
        ("", "", 0, 3),
    ]
    assert f.total.events == {"visits": 3}
    by_tier = group_figures(hub.engine, "c1", ["visits"], lo=WEEK[0], hi=WEEK[1], group_by="tier")
    assert table(by_tier) == [
        ("city", "city groups", pb.TIER_CITY, 2),
        ("county", "county groups", pb.TIER_COUNTY, 1),
        ("", "", 0, 3),
    ]
    # Unbounded: all four of c1's visits; within Yidu's subtree: not Dangyang's.
    assert group_figures(hub.engine, "c1", ["visits"]).total.values == {"visits": 4}
    yidu = group_figures(hub.engine, "c1", ["visits"], YIDU, group_by="group")
    assert [r.values["visits"] for r in yidu.rows] == [0, 2, 1]


def test_as_of_counts_the_visits_recorded_by_then(hub: Pipeline) -> None:
    f = group_figures(hub.engine, "c1", ["visits"], as_of=at("2022-11-15"), group_by="group")
    assert [r.values["visits"] for r in f.rows] == [0, 2, 1]
    with pytest.raises(NotFound, match="as_of: campaign 'c1' was not yet recorded"):
        group_figures(hub.engine, "c1", ["visits"], as_of=at("2022-10-01"))


@pytest.mark.parametrize(
    ("metrics", "group_by", "why"),
    [
        (["problems_found"], "group", "metrics: 'problems_found' is not counted per campaign"),
        (["visits", "sanctioned_persons"], "", "metrics: 'sanctioned_persons' is not counted"),
        (["nope"], "", "metrics: unknown metric 'nope'; known: visits"),
        (["visits"], "unit", "group_by: with campaign_id only group or tier"),
        (["visits"], "week", "group_by: with campaign_id only group or tier"),
    ],
)
def test_what_no_group_makes_is_refused_naming_the_field(
    hub: Pipeline, metrics: list[str], group_by: str, why: str
) -> None:
    with pytest.raises(QueryError, match=why):
        group_figures(hub.engine, "c1", metrics, group_by=group_by)
    with pytest.raises(NotFound, match="campaign_id: unknown campaign 'c9'"):
        group_figures(hub.engine, "c9", ["visits"])


def campaigns_of(p: Pipeline) -> list[tuple[str, str | None, str | None]]:
    with p.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT event_id, campaign_id, group_id FROM facts ORDER BY id")
            )
        ]


def as_written_before(p: Pipeline) -> None:
    """Make the read model one an earlier version wrote: facts without the campaign columns
    (nor their index), and neither change recorded in `layout`."""
    with p.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_facts_campaign"))
        conn.execute(text("ALTER TABLE facts DROP COLUMN campaign_id"))
        conn.execute(text("ALTER TABLE facts DROP COLUMN group_id"))
        conn.execute(
            text("DELETE FROM layout WHERE name IN ('fact-campaign-columns', 'fact-campaigns')")
        )
    p.engine.dispose()


def test_an_earlier_read_model_is_upgraded_and_filled_from_the_log(hub: Pipeline) -> None:
    live = campaigns_of(hub)
    assert ("e4", "c1", "city-1") in live and ("e7", None, None) in live
    as_written_before(hub)
    hub.engine = open_engine(f"sqlite:///{hub.dir / 'readmodel.db'}")
    # The columns came on open, empty: asked before the log is read, refused, not 0.
    assert {c for _, c, _ in campaigns_of(hub)} == {None}
    with pytest.raises(QueryError, match="campaign_id: this read model's visits were counted"):
        group_figures(hub.engine, "c1", ["visits"])
    opened = Hub(HubConfig(hub.dir, listen="127.0.0.1:0"))  # it opens the log: fills them
    try:
        assert campaigns_of(hub) == live
        f = group_figures(hub.engine, "c1", ["visits"], lo=WEEK[0], hi=WEEK[1], group_by="group")
        assert [r.values["visits"] for r in f.rows] == [0, 2, 1]
        assert fill_fact_campaigns(hub.log, hub.engine) == 0  # once
    finally:
        opened.stop()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_fill_reads_the_visits_a_chunk_at_a_time(kind: str) -> None:
    """A read model of 10M events holds millions of visits: their places are read and filled
    a chunk at a time, not held all at once."""
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if kind == "postgresql" else ""
        p = opened(url)
        stack.callback(lambda: p.close())
        live = campaigns_of(p)
        named = sum(1 for _, c, _ in live if c)
        assert named > 1
        as_written_before(p)
        p.engine = open_engine(url or f"sqlite:///{p.dir / 'readmodel.db'}")
        assert {c for _, c, _ in campaigns_of(p)} == {None}
        assert fill_fact_campaigns(p.log, p.engine, chunk=1) == named
        assert campaigns_of(p) == live
        assert fill_fact_campaigns(p.log, p.engine, chunk=1) == 0  # once


def test_replay_finds_an_upgraded_read_model_equal(hub: Pipeline, tmp_path: Path) -> None:
    as_written_before(hub)
    into = f"sqlite:///{tmp_path / 'replay.db'}"
    done = duhub("replay", "--data-dir", str(hub.dir), "--into", into)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equal: the live figures are exactly what the log gives" in done.stdout


def test_postgresql_keeps_the_campaigns_both_ways_of_writing() -> None:
    """Fewer than 100 facts a batch go by INSERT, more by COPY: both store "" as NULL."""
    with fresh_database() as url:
        p = opened(url)
        try:
            many = [
                visit(YIDU_T1, "c1", "yidu", occurred_at=at("2022-11-08") + i) for i in range(60)
            ]
            many += [visit(DANG_T1, occurred_at=at("2022-11-08") + i) for i in range(60)]
            publish(p, many, "2022-11-21")
            f = group_figures(p.engine, "c1", ["visits"], lo=WEEK[0], hi=WEEK[1], group_by="tier")
            assert table(f) == [
                ("city", "city groups", pb.TIER_CITY, 2),
                ("county", "county groups", pb.TIER_COUNTY, 61),
                ("", "", 0, 63),
            ]
            with p.engine.connect() as conn:
                nulls = conn.execute(
                    text("SELECT count(*) FROM facts WHERE campaign_id IS NULL")
                ).scalar()
            assert nulls == 61  # the visits of no campaign: NULL, not ""
        finally:
            p.close()
