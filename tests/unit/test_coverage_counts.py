"""Coverage counted per (group, county) by the database: the uncovered targets still come in
target order when a group's targets interleave counties, and every way of reading the rows
(pairs named, all rows of the scope, rows kept to the scope in Python) gives the same report,
in SQLite and in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from duhub.domain.events import Tier
from duhub.readmodel import coverage as cov
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import (
    DANG,
    DANG_T1,
    DANG_V1,
    YIDU,
    YIDU_T1,
    YIDU_T2,
    YIDU_V1,
    Pipeline,
    at,
    campaign,
    group,
    hierarchy,
    pipeline_on,
    unit,
    visit,
)

# Counties interleaved: Yidu, Dangyang, Yidu, Dangyang, Yidu.
LONE = YIDU_T2 + "201"  # a village no group names
CITY_TARGETS = [YIDU_V1, DANG_V1, YIDU_T1, DANG_T1, YIDU_T2]


@pytest.fixture(params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    # The coverage statements are one text for both databases: each answers them.
    with pipeline_on(request.param) as p:
        yield _filled(p)


def _filled(p: Pipeline) -> Pipeline:
    p.clock.now = at("2023-02-01")
    p.publish(
        hierarchy()
        + [
            unit(
                LONE,
                YIDU_T2,
                pb.LEVEL_VILLAGE,
                event_id="ref:lone",
                source="reference",
                seq=100,
                occurred_at=at("2020-01-01"),
            )
        ],
        allow_reference=True,
    )
    p.publish(
        [
            campaign(
                "c",
                [
                    group("tf", pb.TIER_TASK_FORCE),
                    group("g", pb.TIER_CITY, *CITY_TARGETS),
                    group("k", pb.TIER_COUNTY, YIDU_T1, YIDU_V1),
                ],
                event_id="camp",
                seq=1,
            )
        ]
    )
    visits = [
        ("g", YIDU_T1, "2022-11-05"),
        ("g", DANG_V1, "2022-11-06"),
        ("k", YIDU_V1, "2022-11-07"),
        ("k", YIDU_T1, "2022-11-09"),
    ]
    for i, (g, target, when) in enumerate(visits, start=2):
        p.clock.now = at("2023-02-01") + i
        p.publish([visit(target, "c", g, event_id=f"v{i}", seq=i, occurred_at=at(when))])
    p.tailer.catch_up()
    return p


def _both_ways(
    p: Pipeline, scope: str = "", as_of: int | None = None, occurred_before: int | None = None
) -> cov.CoverageReport:
    rep = cov.coverage(p.engine, "c", scope, as_of, occurred_before)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cov, "MAX_NAMED_TARGETS", 0)
        mp.setattr(cov, "MAX_NAMED_PAIRS", 0)
        cov._TARGETS.clear()
        try:
            assert cov.coverage(p.engine, "c", scope, as_of, occurred_before) == rep
        finally:
            cov._TARGETS.clear()
    return rep


def test_uncovered_come_in_target_order_across_counties(hub: Pipeline) -> None:
    rep = _both_ways(hub)
    g, k = rep.groups[1], rep.groups[2]
    assert (g.targets, g.covered, g.uncovered) == (5, 2, [YIDU_V1, DANG_T1, YIDU_T2])
    assert (k.targets, k.covered, k.uncovered, k.full) == (2, 2, [], True)
    assert k.full_at == at("2022-11-09")
    tiers = {t.tier: (t.targets, t.covered, t.uncovered) for t in rep.tiers}
    assert tiers[Tier.CITY] == (5, 2, [YIDU_V1, DANG_T1, YIDU_T2])
    assert tiers[Tier.COUNTY] == (2, 2, [])
    counties = {c.key: (c.targets, c.covered, c.uncovered) for c in rep.counties}
    assert counties == {YIDU: (5, 3, [YIDU_V1, YIDU_T2]), DANG: (2, 1, [DANG_T1])}


def test_a_scope_and_a_moment(hub: Pipeline) -> None:
    rep = _both_ways(hub, YIDU)
    assert [(t.key, t.targets, t.covered, t.uncovered) for t in rep.groups[1:]] == [
        ("g", 3, 1, [YIDU_V1, YIDU_T2]),
        ("k", 2, 2, []),
    ]
    rep = _both_ways(hub, YIDU_T1)
    assert [(t.key, t.targets, t.covered, t.uncovered) for t in rep.groups[1:]] == [
        ("g", 2, 1, [YIDU_V1]),
        ("k", 2, 2, []),
    ]
    # A scope without targets (a village no group names): nothing to count, nothing asked
    # of the database (PostgreSQL refuses an empty IN list).
    rep = _both_ways(hub, LONE)
    assert [(t.key, t.targets, t.covered, t.uncovered) for t in rep.groups] == [
        ("tf", 0, 0, []),
        ("g", 0, 0, []),
        ("k", 0, 0, []),
    ]
    assert rep.counties == [] and rep.full
    # Before the last two visits were recorded: group k had none of its targets.
    rep = _both_ways(hub, "", at("2023-02-01") + 3)
    assert [(t.key, t.covered, t.uncovered) for t in rep.groups[1:]] == [
        ("g", 2, [YIDU_V1, DANG_T1, YIDU_T2]),
        ("k", 0, [YIDU_T1, YIDU_V1]),
    ]


def test_the_coverage_on_a_given_day(hub: Pipeline) -> None:
    """occurred_before counts only the visits that occurred (event time) before it, however
    late they were recorded: the coverage as it stood at the end of 2022-11-07."""
    rep = _both_ways(hub, occurred_before=at("2022-11-08"))
    assert rep.occurred_before == at("2022-11-08")
    assert [(t.key, t.covered, t.uncovered, t.full_at) for t in rep.groups[1:]] == [
        ("g", 2, [YIDU_V1, DANG_T1, YIDU_T2], None),
        ("k", 1, [YIDU_T1], None),
    ]
    # The moment itself is outside: a visit at exactly it came after.
    rep = _both_ways(hub, occurred_before=at("2022-11-09"))
    assert [(t.key, t.covered) for t in rep.groups[1:]] == [("g", 2), ("k", 1)]
    rep = _both_ways(hub, occurred_before=at("2022-11-09") + 1)
    k = rep.groups[2]
    assert (k.covered, k.full, k.full_at) == (2, True, at("2022-11-09"))
    # With as_of too: known by then (the first three visits recorded) and occurred before
    # 2022-11-07 (not k's visit of that day).
    rep = _both_ways(hub, "", at("2023-02-01") + 4, at("2022-11-07"))
    assert [(t.key, t.covered) for t in rep.groups[1:]] == [("g", 2), ("k", 0)]
    counties = {c.key: (c.targets, c.covered) for c in rep.counties}
    assert counties == {YIDU: (5, 1), DANG: (2, 1)}
    # Before any visit: nothing covered, a real answer, not a refusal.
    rep = _both_ways(hub, YIDU, occurred_before=at("2022-01-01"))
    assert [t.covered for t in rep.groups] == [0, 0, 0] and not rep.full
