"""The writer's bulk paths (COPY on PostgreSQL, executemany on SQLite) store values exactly,
including ones COPY's text format must escape, on both read models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from duhub.domain.events import Level, SupervisionGroup, Tier
from duhub.domain.model import Campaign, Problem, Unit
from duhub.projections.effects import (
    CampaignAdded,
    Counted,
    Covered,
    ProblemAdded,
    ProblemClosed,
    Seen,
    UnitAdded,
)
from duhub.projections.timegrid import GRAINS
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import COPY_FROM, PositionConflict, read_positions, write_batch
from tests.infra import database_on

AWKWARD_NAMES = ["back\\slash", "quote ' and \" both", "宜昌市 \\N", "\\x41 not bytes", "tab\\t"]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    with database_on(request.param, tmp_path) as url:
        eng = open_engine(url)
        yield eng
        eng.dispose()


def test_awkward_values_and_bytes_round_trip(engine: Engine) -> None:
    units = [
        UnitAdded(Unit(f"u{i}", "", Level.CITY, name, (f"u{i}",), i % 2 == 0, False), 7)
        for i, name in enumerate(AWKWARD_NAMES)
    ]
    digests = [bytes([i]) * 32 for i in range(3)] + [b"\\\t\n" * 10 + b"xy"]
    seen = [Seen(f"e{i}", d, "u0", i + 1, 10 + i, 20 + i, d, 0, i) for i, d in enumerate(digests)]
    counted = [Counted(("u0", "u1"), "visits", "ecology", 3_600_000_000_000 * 500_000, 2, "e0", 10)]
    problem = ProblemAdded(Problem("p\\1", "u0", "ecology", 5), "e1")
    write_batch(engine, [*units, *seen, *counted, problem], {0: len(seen)})

    with engine.connect() as conn:
        names = dict(conn.execute(select(s.units.c.unit_id, s.units.c.name)).all())
        samples = dict(conn.execute(select(s.units.c.unit_id, s.units.c.sample)).all())
        stored = dict(conn.execute(select(s.events_seen.c.event_id, s.events_seen.c.digest)).all())
        facts = conn.execute(select(s.facts.c.unit_path, s.facts.c.value)).all()
        rollups = conn.execute(
            select(s.rollups.c.scope_id, s.rollups.c.value).where(s.rollups.c.grain == 3)
        ).all()
        problems = conn.execute(select(s.problems.c.problem_id, s.problems.c.rectified_at)).all()
    assert names == {f"u{i}": n for i, n in enumerate(AWKWARD_NAMES)}
    assert samples == {f"u{i}": i % 2 == 0 for i in range(len(AWKWARD_NAMES))}
    assert {k: bytes(v) for k, v in stored.items()} == {f"e{i}": d for i, d in enumerate(digests)}
    assert facts == [("/u0/u1/", 2)]
    assert sorted(rollups) == [("u0", 2), ("u1", 2)]
    assert problems == [("p\\1", None)]


def test_rollups_add_up_across_batches(engine: Engine) -> None:
    at = 3_600_000_000_000 * 500_000
    for i in range(3):
        write_batch(engine, [Counted(("c", "k"), "visits", "ecology", at, i + 1, f"e{i}", 1)], {})
    with engine.connect() as conn:
        rows = conn.execute(
            select(s.rollups.c.scope_id, s.rollups.c.grain, s.rollups.c.value, s.rollups.c.events)
        ).all()
    assert sorted(rows) == [(sid, g, 6, 3) for sid in ("c", "k") for g in GRAINS]


def test_problems_close_in_the_same_and_a_later_batch(engine: Engine) -> None:
    found = [ProblemAdded(Problem(f"p{i}", "u0", "ecology", 5), f"f{i}") for i in range(3)]
    write_batch(engine, [*found[:2], ProblemClosed("p1", 9, "r1", 11)], {})
    write_batch(engine, [found[2], ProblemClosed("p0", 8, "r0", 12)], {})
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                s.problems.c.problem_id,
                s.problems.c.rectified_at,
                s.problems.c.rectified_event_id,
                s.problems.c.rectified_recorded_at,
            ).order_by(s.problems.c.problem_id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("p0", 8, "r0", 12),
        ("p1", 9, "r1", 11),
        ("p2", None, None, None),
    ]


def test_positions_move_only_from_where_the_batch_started(engine: Engine) -> None:
    def fact(i: int) -> Counted:
        return Counted(("c",), "visits", "ecology", 3_600_000_000_000 * 500_000, 1, f"e{i}", 1)

    write_batch(engine, [fact(0)], {0: 5, 1: 3}, expected={})
    with pytest.raises(PositionConflict):  # a second worker that started from the same place
        write_batch(engine, [fact(1)], {0: 7}, expected={0: 0})
    with pytest.raises(PositionConflict):  # one partition moved, the other did not
        write_batch(engine, [fact(2)], {0: 9, 1: 4}, expected={0: 5, 1: 2})
    write_batch(engine, [fact(3)], {0: 9, 1: 4, 2: 1}, expected={0: 5, 1: 3})
    assert read_positions(engine) == {0: 9, 1: 4, 2: 1}
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(s.facts.c.event_id)).scalars())
    assert ids == ["e0", "e3"]  # the refused batches left nothing behind
    rows = dict(
        ((r.scope_id, r.grain), r.value)
        for r in engine.connect().execute(
            select(s.rollups.c.scope_id, s.rollups.c.grain, s.rollups.c.value)
        )
    )
    # Rolled-back batches (they created the session's delta table first) do not stop the
    # next one on the same connection from adding up.
    assert rows == {("c", g): 2 for g in GRAINS}


def test_large_batches_take_the_copy_path_exactly(engine: Engine) -> None:
    n = 3 * COPY_FROM  # over the threshold: COPY on PostgreSQL
    names = [f"{AWKWARD_NAMES[i % len(AWKWARD_NAMES)]} #{i}" for i in range(n)]
    units = [UnitAdded(Unit(f"u{i}", "", Level.CITY, names[i], (f"u{i}",)), 7) for i in range(n)]
    seen = [Seen(f"e{i}", bytes([i % 256]) * 32, "u0", i + 1, 1, 2, b"", 0, i) for i in range(n)]
    write_batch(engine, [*units, *seen], {0: n})
    with engine.connect() as conn:
        stored = dict(conn.execute(select(s.units.c.unit_id, s.units.c.name)).all())
        digests = dict(conn.execute(select(s.events_seen.c.event_id, s.events_seen.c.digest)).all())
    assert stored == {f"u{i}": names[i] for i in range(n)}
    assert {k: bytes(v) for k, v in digests.items()} == {
        f"e{i}": bytes([i % 256]) * 32 for i in range(n)
    }


def _campaign(campaign_id: str, groups: dict[str, tuple[str, ...]]) -> CampaignAdded:
    return CampaignAdded(
        Campaign(
            campaign_id,
            "a campaign",
            "ecology",
            1,
            2,
            tuple(SupervisionGroup(g, f"group {g}", Tier.CITY, t) for g, t in groups.items()),
            "src",
            7,
        )
    )


def test_campaign_targets_keep_their_order_and_their_units_paths(engine: Engine) -> None:
    # Over COPY_FROM targets, the way a city's campaign names every unit.
    n = 2 * COPY_FROM
    units = [UnitAdded(Unit("c", "", Level.CITY, "city", ("c",)), 7)] + [
        UnitAdded(Unit(f"u{i}", "c", Level.COUNTY, f"unit {i}", ("c", f"u{i}")), 7)
        for i in range(n)
    ]
    write_batch(engine, units, {})
    later = [f"u{i}" for i in reversed(range(n))]  # an order of its own: ordinals follow it
    write_batch(engine, [_campaign("c1", {"g1": ("u3", "c", "u1"), "g2": tuple(later)})], {})
    with engine.connect() as conn:
        rows = conn.execute(select(s.campaign_targets)).all()
    assert sorted(tuple(r) for r in rows) == sorted(
        [
            ("c1", "g1", "u3", 0, "/c/u3/"),
            ("c1", "g1", "c", 1, "/c/"),
            ("c1", "g1", "u1", 2, "/c/u1/"),
        ]
        + [("c1", "g2", u, j, f"/c/{u}/") for j, u in enumerate(later)]
    )


def test_a_campaign_naming_a_unit_the_read_model_lacks_writes_nothing(engine: Engine) -> None:
    """The rules let no such campaign through; were one to reach the writer, its targets must
    not be dropped unsaid: the batch fails, naming the campaign and the units."""
    write_batch(engine, [UnitAdded(Unit("c", "", Level.CITY, "city", ("c",)), 7)], {})
    with pytest.raises(
        LookupError, match=r"campaign c1 names units not in the read model: .*ghost"
    ):
        write_batch(engine, [_campaign("c1", {"g1": ("c", "ghost")})], {0: 1})
    with engine.connect() as conn:
        assert conn.execute(select(s.campaigns.c.campaign_id)).all() == []
        assert conn.execute(select(s.campaign_targets.c.unit_id)).all() == []
    assert read_positions(engine) == {}


def test_coverage_keeps_the_earliest_visit_per_target(engine: Engine) -> None:
    def cover(unit: str, at: int, recorded: int) -> Covered:
        return Covered("c1", "g1", unit, at, recorded, f"v{unit}{at}", "k")

    write_batch(engine, [cover("a", 50, 500), cover("b", 70, 700), cover("a", 40, 900)], {})
    write_batch(engine, [cover("a", 60, 100), cover("b", 80, 800), cover("c", 5, 5)], {})
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                s.coverage.c.unit_id, s.coverage.c.first_at, s.coverage.c.first_recorded_at
            ).order_by(s.coverage.c.unit_id)
        ).all()
    # Earliest by event time and, apart, earliest by record time (what as-of questions use).
    assert [tuple(r) for r in rows] == [("a", 40, 100), ("b", 70, 700), ("c", 5, 5)]


def test_source_heads_move_to_the_last_chained_event_of_each_source(engine: Engine) -> None:
    def seen(i: int, source: str, h: bytes) -> Seen:
        return Seen(f"{source}-{i}", h, source, i, 10 + i, 20 + i, h, 0, i)

    awkward = b"\\\t\n" * 10 + b"xy"
    write_batch(
        engine, [seen(1, "a", b"1" * 32), seen(2, "a", awkward), seen(1, "b", b"3" * 32)], {}
    )
    write_batch(engine, [seen(2, "b", b"4" * 32), seen(3, "b", b"5" * 32)], {})
    with engine.connect() as conn:
        heads = conn.execute(select(s.source_heads).order_by(s.source_heads.c.source)).all()
    assert [(r.source, bytes(r.last_hash), r.last_seq, r.last_event_id) for r in heads] == [
        ("a", awkward, 2, "a-2"),
        ("b", b"5" * 32, 3, "b-3"),
    ]


def _front(points: list[tuple[str, int, int, str]]) -> set[tuple[str, int, int, str]]:
    """The (unit, record time, event time, event id) points no other point of the unit
    matches or beats in both record time and (event time, event id): what `coverage_firsts`
    must hold."""
    return {
        (u, r, a, e)
        for u, r, a, e in set(points)
        if not any(
            v == u and r2 <= r and (a2, e2) <= (a, e) and (r2, a2, e2) != (r, a, e)
            for v, r2, a2, e2 in set(points)
        )
    }


_CAMPAIGNS = iter(range(10**9))


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    points=st.lists(
        # Few event ids: visits at one moment (a tie in event time) are ordered by theirs.
        st.tuples(
            st.sampled_from(["t1", "t2"]),
            st.integers(0, 6),
            st.integers(0, 6),
            st.sampled_from(["e1", "e2", "e3"]),
        ),
        min_size=1,
        max_size=14,
    ),
    cuts=st.lists(st.integers(0, 14), max_size=4),
)
def test_first_covered_rows_are_the_front_in_any_order(
    engine: Engine, points: list[tuple[str, int, int, str]], cuts: list[int]
) -> None:
    """Covering visits applied in any order and any batches (Kafka's partitions interleave
    record times) leave per target exactly the front of (record time, (event time, event
    id)): an as-of answer takes the earliest event time among the rows recorded by then, and
    its lineage the visit of that row. The target's coverage row names its earliest visit."""
    campaign = f"c{next(_CAMPAIGNS)}"
    bounds = [0, *sorted(c for c in cuts if c < len(points)), len(points)]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        batch = [Covered(campaign, "g", u, a, r, e, "420581") for u, r, a, e in points[lo:hi]]
        if batch:
            write_batch(engine, batch, {})
    t = s.coverage_firsts
    with engine.connect() as conn:
        stored = conn.execute(
            select(t.c.unit_id, t.c.recorded_at, t.c.first_at, t.c.event_id, t.c.county_id).where(
                t.c.campaign_id == campaign
            )
        ).all()
        c = s.coverage.c
        named = conn.execute(
            select(c.unit_id, c.first_at, c.first_event_id).where(c.campaign_id == campaign)
        ).all()
    assert {(u, r, a, e) for u, r, a, e, _ in stored} == _front(points)
    assert len(stored) == len(_front(points)) and {c for *_, c in stored} == {"420581"}
    assert sorted(named) == sorted(
        (u, *min((a, e) for v, _, a, e in points if v == u)) for u in {p[0] for p in points}
    )
