"""Random scenarios through the real pipeline, checked against the brute-force oracle.

Ingestor.publish (random batch splits, catch-ups at random points) -> EmbeddedLog ->
LogTailer/BatchApplier -> SQLite; then statistics(...) and coverage(...) must equal the
oracle's figures for the events the oracle's own rule model accepts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from duhub.convert import event_from_pb
from duhub.domain import events as ev
from duhub.domain.events import Event, Level, TalkKind, Tier
from duhub.readmodel import coverage as cov
from duhub.readmodel import schema
from duhub.readmodel.coverage import coverage
from duhub.readmodel.coverage_lineage import CoveringVisit, explain_coverage
from duhub.readmodel.lineage import MAX_EXPLAIN_LIMIT
from duhub.readmodel.statistics import NotFound, statistics
from duhub.v1 import events_pb2 as pb
from services.aggregate.apply import BatchApplier
from tests.unit import oracle
from tests.unit.builders import DAY, HOUR, NS, Pipeline, at, kinds, to_pb

# Bounded so the file runs in well under a minute: each example builds a fresh hub on disk.
SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEWER = settings(SETTINGS, max_examples=30)

CITY = "420500"
BASE = at("2022-11-01")
CLOCK0 = BASE + 80 * DAY  # the ingest clock of the first batch; +1 minute per batch
AREAS = ("ecology", "grain", "vaccination")
REF_TIME = at("2020-01-01")


def counties(n: int) -> list[str]:
    return [f"4205{81 + i}" for i in range(n)]


def base_units(n: int) -> list[tuple[str, str, Level]]:
    out = [(CITY, "", Level.CITY)]
    for c in counties(n):
        out.append((c, CITY, Level.COUNTY))
        for t in (f"{c}101", f"{c}102"):
            out.append((t, c, Level.TOWNSHIP))
            out.append((f"{t}201", t, Level.VILLAGE))
    return out


def reference_events(n: int) -> list[Event]:
    return [
        Event(
            f"ref:{u}",
            "reference",
            i,
            REF_TIME,
            0,
            ev.OrgUnitRegistered(u, parent, level, f"unit {u}"),
        )
        for i, (u, parent, level) in enumerate(base_units(n), start=1)
    ]


def county_of(unit_id: str) -> str:
    return unit_id[:6] if len(unit_id) >= 6 and unit_id != CITY else CITY


@dataclass
class Scenario:
    n_counties: int
    events: list[Event]
    batches: list[int]  # sizes, summing to len(events)
    catch_up_after: list[bool]
    queries: list[tuple]
    # (campaign, scope, as_of, occurred_before)
    coverage_queries: list[tuple[str, str, int | None, int | None]]

    def arrivals(self, hierarchy_now: int) -> list[tuple[Event, int, bool]]:
        out = [(e, hierarchy_now, True) for e in reference_events(self.n_counties)]
        i = 0
        for b, size in enumerate(self.batches):
            out += [(e, CLOCK0 + b * 60 * NS, False) for e in self.events[i : i + size]]
            i += size
        return out


def times(draw, lo: int = BASE - 5 * DAY, hi: int = BASE + 70 * DAY) -> int:
    """An event time: mostly whole seconds, sometimes odd nanoseconds, sometimes near 'future'."""
    kind = draw(st.sampled_from(["sec", "sec", "sec", "ns", "future"]))
    if kind == "future":
        return CLOCK0 + DAY + draw(st.integers(-120, 120)) * NS
    t = draw(st.integers(lo // NS, hi // NS)) * NS
    return t + (draw(st.integers(0, NS - 1)) if kind == "ns" else 0)


@st.composite
def scenarios(draw, independent: bool = False) -> Scenario:
    n = draw(st.integers(2, 3))
    units = [u for u, _, _ in base_units(n)]
    below_city = [u for u in units if u != CITY]
    townships = [u for u, _, level in base_units(n) if level == Level.TOWNSHIP]
    extra = [f"{t}2{j:02d}" for t in townships for j in (50, 51)]  # registrable villages
    ghosts = ["420599", "420581999"]
    fact_units = units * 3 + ([] if independent else extra + ghosts)
    cs = counties(n)

    starts = BASE + draw(st.integers(0, 10 * 24)) * HOUR + draw(st.sampled_from([0, 1, 1800]))
    ends = starts + draw(st.integers(1, 40 * 24)) * HOUR
    groups = [ev.SupervisionGroup("tf", "task force", Tier.TASK_FORCE, ())]
    city_targets = draw(st.lists(st.sampled_from(cs), min_size=1, unique=True))
    groups.append(ev.SupervisionGroup("city", "city group", Tier.CITY, tuple(city_targets)))
    for c in cs:
        mine = [u for u in below_city if u.startswith(c) and u != c]
        targets = draw(st.lists(st.sampled_from(mine), unique=True, max_size=4))
        if targets or draw(st.booleans()):
            groups.append(ev.SupervisionGroup(f"n-{c}", f"group {c}", Tier.COUNTY, tuple(targets)))
    group_ids = [g.group_id for g in groups]
    events: list[Event] = [
        Event(
            "camp",
            CITY,
            1,
            starts - HOUR,
            0,
            ev.CampaignLaunched("camp", "the campaign", "vaccination", starts, ends, tuple(groups)),
        )
    ]
    seqs = {CITY: 1}
    problem_ids = [f"p{i}" for i in range(6)]
    letter_ids = [f"L{i}" for i in range(4)]
    used_problems: set[str] = set()
    used_letters: set[str] = set()
    camp2 = None

    def next_seq(source: str) -> int:
        seqs[source] = seqs.get(source, 0) + 1
        return seqs[source]

    def pick_source(unit_id: str) -> str:
        if independent:
            return draw(st.sampled_from([county_of(unit_id), CITY]))
        mode = draw(st.sampled_from(["own"] * 6 + ["city"] * 2 + ["other"]))
        if mode == "own":
            return county_of(unit_id)
        if mode == "city":
            return CITY
        return draw(st.sampled_from([*cs, townships[0], "reference", "420599"]))

    n_facts = draw(st.integers(3, 14 if independent else 30))
    for i in range(n_facts):
        kinds_ = ["visit"] * 5 + [
            "problem",
            "problem",
            "rectify",
            "rectify",
            "accountability",
            "sanction",
            "talk",
            "letter",
            "regulation",
        ]
        if not independent:
            kinds_ += ["register", "resend", "reuse_id", "reuse_seq", "campaign2"]
        kind = draw(st.sampled_from(kinds_))
        u = draw(st.sampled_from(fact_units))
        t = times(draw) if not independent else BASE + draw(st.integers(-5 * DAY, 70 * DAY))
        area = draw(st.sampled_from(AREAS))
        persons = draw(st.integers(1, 5))
        payload: object
        reuse = None
        if kind in ("resend", "reuse_id", "reuse_seq"):
            old = draw(st.sampled_from(events))
            if kind == "resend":
                events.append(old)
                continue
            reuse, kind = (kind, old), draw(st.sampled_from(["accountability", "visit", "talk"]))
        if kind == "visit":
            cid = draw(
                st.sampled_from(
                    ["camp", "camp", "camp", "", "nocamp"] + (["camp2"] if camp2 else [])
                )
            )
            gid = draw(st.sampled_from([*group_ids, "g-unknown"])) if cid else ""
            if cid == "camp2":
                gid = "g2"
            if cid == "camp" and draw(st.integers(0, 3)):
                # Aim at a real target, inside or outside the window.
                g = draw(st.sampled_from([g for g in groups if g.target_unit_ids]))
                gid, u = g.group_id, draw(st.sampled_from(g.target_unit_ids))
                if independent or draw(st.integers(0, 3)):
                    inside = starts + draw(st.integers(0, (ends - starts) // NS - 1)) * NS
                    t = draw(st.sampled_from([inside, starts, ends - 1, ends, starts - 1]))
            if independent and cid in ("nocamp", "camp2"):
                cid, gid = "", ""
            if independent and gid == "g-unknown":
                gid = "tf"
            payload = ev.SupervisionVisit(cid, gid, u, area, draw(st.integers(0, 3)))
        elif kind == "problem":
            pool = (
                [p for p in problem_ids if p not in used_problems] if independent else problem_ids
            )
            if not pool:
                continue
            pid = draw(st.sampled_from(pool))
            used_problems.add(pid)
            payload = ev.ProblemFound(
                pid, u, draw(st.sampled_from(AREAS)), draw(st.sampled_from(["", "camp"]))
            )
        elif kind == "rectify":
            if independent:
                open_ = [
                    e
                    for e in events
                    if isinstance(e.payload, ev.ProblemFound)
                    and e.payload.problem_id in used_problems
                    and not any(
                        isinstance(x.payload, ev.ProblemRectified)
                        and x.payload.problem_id == e.payload.problem_id
                        for x in events
                    )
                ]
                if not open_:
                    continue
                found = draw(st.sampled_from(open_))
                payload = ev.ProblemRectified(found.payload.problem_id)
                u = found.payload.unit_id
                # Never past the first batch's clock: reordered into one batch, a time in the
                # day ahead of a later batch's clock would be refused as future.
                t = min(found.occurred_at + draw(st.integers(0, 20 * DAY // NS)) * NS, CLOCK0)
            else:
                found_ids = [
                    e.payload.problem_id for e in events if isinstance(e.payload, ev.ProblemFound)
                ]
                pool = found_ids * 4 + problem_ids if found_ids else problem_ids
                payload = ev.ProblemRectified(draw(st.sampled_from(pool)))
                found = [
                    e
                    for e in events
                    if isinstance(e.payload, ev.ProblemFound)
                    and e.payload.problem_id == payload.problem_id
                ]
                if found:
                    u = found[0].payload.unit_id
                    if draw(st.integers(0, 3)):  # a little after (or before) it was found
                        t = found[0].occurred_at + draw(st.integers(-2, 3 * 24)) * HOUR
        elif kind == "accountability":
            payload = ev.AccountabilityImposed(u, area, persons)
        elif kind == "sanction":
            payload = ev.SanctionImposed(u, area, persons)
        elif kind == "talk":
            payload = ev.TalkHeld(
                u,
                draw(st.sampled_from(("", *AREAS))),
                draw(st.sampled_from(list(TalkKind))),
                persons,
            )
        elif kind == "letter":
            pool = [x for x in letter_ids if x not in used_letters] if independent else letter_ids
            if not pool:
                continue
            lid = draw(st.sampled_from(pool))
            used_letters.add(lid)
            payload = ev.RecommendationIssued(lid, u, area)
        elif kind == "regulation":
            payload = ev.RegulationImproved(u, area, persons)
        elif kind == "register":
            new = draw(st.sampled_from(extra))
            parent = draw(st.sampled_from([new[:9], new[:9], new[:6], f"{new[:9]}201"]))
            level = Level.VILLAGE if draw(st.integers(0, 3)) else Level.TOWNSHIP
            payload = ev.OrgUnitRegistered(new, parent, level, f"unit {new}")
            u = parent
        elif kind == "campaign2":
            c = draw(st.sampled_from(cs))
            targets = draw(
                st.lists(
                    st.sampled_from([x for x in below_city + extra if x.startswith(c)]),
                    unique=True,
                    max_size=3,
                )
            )
            payload = ev.CampaignLaunched(
                "camp2",
                "second",
                "ecology",
                BASE,
                BASE + 30 * DAY,
                (ev.SupervisionGroup("g2", "g2", Tier.COUNTY, tuple(targets)),),
            )
            camp2 = True
            u = c
        source = pick_source(u)
        city_group = isinstance(payload, ev.SupervisionVisit) and payload.group_id in ("tf", "city")
        if city_group and (independent or draw(st.integers(0, 3))):
            source = CITY  # a city group's visits are the city node's; a county's are refused
        event_id, seq = f"e{i}", next_seq(source)
        if reuse is not None and reuse[0] == "reuse_id":
            event_id = reuse[1].event_id  # the same id, other content (unless drawn equal)
        elif reuse is not None:
            source, seq = reuse[1].source, reuse[1].seq  # a (source, seq) another id took
        events.append(Event(event_id, source, seq, t, 0, payload))  # type: ignore[arg-type]

    sizes = []
    left = len(events)
    while left:
        k = draw(st.integers(1, left))
        sizes.append(k)
        left -= k
    catch = [draw(st.booleans()) for _ in sizes]
    clocks = [CLOCK0 + b * 60 * NS for b in range(len(sizes))]

    # Query bounds: event times exactly and a nanosecond off, hour and day edges, random.
    pivots = [e.occurred_at for e in events] or [BASE]

    def bound() -> int | None:
        how = draw(
            st.sampled_from(["event", "event", "off", "hour", "day", "random", "none", "none"])
        )
        if how == "none":
            return None
        if how in ("event", "off"):
            p = draw(st.sampled_from(pivots))
            return p + (draw(st.sampled_from([-1, 1])) if how == "off" else 0)
        r = BASE + draw(st.integers(-10 * DAY, 80 * DAY)) // NS * NS
        if how == "hour":
            return r // HOUR * HOUR
        if how == "day":
            return r // DAY * DAY
        return r

    scopes = ["", "", CITY, *cs, *units]
    queries = []
    for _ in range(draw(st.integers(3, 6))):
        lo, hi = bound(), bound()
        if lo is not None and hi is not None and lo >= hi:
            lo, hi = (hi, lo) if hi < lo else (lo, None)
        group_by = draw(
            st.sampled_from(["", "", "unit", "day", "week", "month", "quarter", "year"])
        )
        if group_by not in ("", "unit"):
            lo = BASE - draw(st.integers(0, 40 * DAY // NS)) * NS if lo is None else lo
            hi = BASE + draw(st.integers(1, 90 * DAY // NS)) * NS if hi is None else hi
            if lo >= hi:
                lo, hi = hi - DAY, lo + DAY
        as_of = draw(
            st.sampled_from(
                [None] * 4 + [clocks[-1], clocks[len(clocks) // 2], clocks[0] - 1]
                if clocks
                else [None]
            )
        )
        queries.append(
            (
                draw(st.sampled_from(scopes)),
                draw(st.sampled_from(("", "", *AREAS))),
                lo,
                hi,
                group_by,
                as_of,
            )
        )
    # A sweep over every area, the counties (grouped by unit), a township and a village.
    lo, hi = bound(), draw(st.sampled_from([None, BASE + 100 * DAY, *pivots]))
    if lo is not None and hi is not None and lo >= hi:
        lo = None
    for area in ("", *AREAS):
        queries.append(("", area, lo, hi, "unit", None))
        for scope in (draw(st.sampled_from(townships)), f"{draw(st.sampled_from(townships))}201"):
            queries.append((scope, area, lo, hi, "", None))
    coverage_queries = [
        (
            cid,
            draw(st.sampled_from(scopes)),
            draw(st.sampled_from([None, *clocks, clocks[0] - 1] if clocks else [None])),
            # The coverage on a given moment of event time: at, just after and between visits.
            draw(st.sampled_from([None, None, *pivots, *(t + 1 for t in pivots)])),
        )
        for cid in ("camp", "camp", "camp", "camp2")
    ]
    return Scenario(n, events, sizes, catch, queries, coverage_queries)


def run(p: Pipeline, sc: Scenario) -> list[str]:
    """Publish the scenario in its batches (catching up where it says); return the kinds."""
    events = sc.events
    p.clock.now = CLOCK0 - 60 * NS
    out = kinds(
        p.publish([to_pb(e) for e in reference_events(sc.n_counties)], allow_reference=True)
    )
    i = 0
    for b, size in enumerate(sc.batches):
        p.clock.now = CLOCK0 + b * 60 * NS
        msgs = [to_pb(e) for e in events[i : i + size]]
        results = p.publish(msgs)
        for r in results:
            if r.reason:
                assert r.field and r.reason.startswith(f"{r.field}: "), r
        out += kinds(results)
        i += size
        if sc.catch_up_after[b]:
            p.tailer.catch_up()
    p.tailer.catch_up()
    return out


def check_figures(p: Pipeline, world: oracle.World, sc: Scenario) -> None:
    metrics = list(oracle.METRICS)
    for scope, area, lo, hi, group_by, as_of in sc.queries:
        rows = statistics(p.engine, metrics, scope, area, lo, hi, group_by, as_of)
        got = [(r.key, r.values) for r in rows]
        if group_by == "unit":
            want = list(world.by_unit(scope, area, lo, hi, as_of).items())
        elif group_by:
            assert lo is not None and hi is not None
            want = world.by_period(group_by, lo, hi, scope, area, as_of)
        else:
            want = [("", world.figures(scope, area, lo, hi, as_of))]
        assert got == want, (scope, area, lo, hi, group_by, as_of)
    for cid, scope, as_of, before in sc.coverage_queries:
        expected = world.coverage(cid, scope, as_of, before)
        if expected is None:
            with pytest.raises(NotFound):
                coverage(p.engine, cid, scope, as_of, before)
            continue
        rep = coverage(p.engine, cid, scope, as_of, before)
        # Counted per (group, county) with the rows of the partly covered pairs read, or
        # (none named) every row of the scope's county read and kept to the scope in Python:
        # the same report, to the last first_at.
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cov, "MAX_NAMED_TARGETS", 0)
            mp.setattr(cov, "MAX_NAMED_PAIRS", 0)
            cov._TARGETS.clear()  # its scopes were made with the limits before
            try:
                assert coverage(p.engine, cid, scope, as_of, before) == rep, (
                    cid,
                    scope,
                    as_of,
                    before,
                )
            finally:
                cov._TARGETS.clear()
        assert [(g.key, g.tier, g.targets, g.covered, g.uncovered) for g in rep.groups] == [
            (g.group_id, g.tier, len(g.targets), g.covered, g.uncovered) for g in expected.groups
        ], (cid, scope, as_of, before)
        assert {t.tier: (t.targets, t.covered) for t in rep.tiers} == expected.tiers()
        assert {c.key: (c.targets, c.covered, c.uncovered) for c in rep.counties} == (
            world.coverage_by_county(expected)
        ), (cid, scope, as_of, before)
        assert rep.full == expected.full
        # When each became full, from the visits recorded by then (an earlier-dated visit
        # recorded later was not known at as_of).
        assert [g.full_at for g in rep.groups] == [g.full_at for g in expected.groups], (
            cid,
            scope,
            as_of,
        )
        assert {c.key: c.full_at for c in rep.counties} == world.full_at_by_county(expected), (
            cid,
            scope,
            as_of,
        )
        for g in rep.groups:
            assert g.ratio == (g.covered / g.targets if g.targets else 1.0)
        # Lineage: the visit that covered each covered target, as counted above.
        lineage = explain_coverage(p.engine, cid, scope, "", as_of, before, MAX_EXPLAIN_LIMIT)
        assert (lineage.targets, lineage.covered) == (
            sum(len(g.targets) for g in expected.groups),
            sum(g.covered for g in expected.groups),
        )
        assert {(v.group_id, v.unit_id): v.event_id for v in lineage.visits} == {
            (g.group_id, u): event_id for g in expected.groups for u, event_id in g.via.items()
        }, (cid, scope, as_of, before)
        assert all(v.occurred_at == expected_first(expected, v) for v in lineage.visits)


def expected_first(expected: oracle.Coverage, v: CoveringVisit) -> int:
    return next(g.first[v.unit_id] for g in expected.groups if g.group_id == v.group_id)


def expect(sc: Scenario) -> tuple[list[str], oracle.World]:
    verdicts, accepted = oracle.accepted_events(sc.arrivals(CLOCK0 - 60 * NS))
    return verdicts, oracle.World(accepted)


@SETTINGS
@given(sc=scenarios(), seed=st.integers(0, 2**32 - 1))
def test_pipeline_matches_the_oracle_and_redelivery_changes_nothing(
    sc: Scenario, seed: int
) -> None:
    verdicts, world = expect(sc)
    p = Pipeline.open()
    try:
        assert run(p, sc) == verdicts
        end = p.end()
        assert end == verdicts.count("accepted")
        # The log holds exactly the accepted events, in order, each converting back cleanly.
        logged = [event_from_pb(pb.Event.FromString(r.value)) for r in p.log.read(0, 0, end)]
        assert [(e.event_id, e.occurred_at, e.recorded_at) for e in logged] == [
            (e.event_id, e.occurred_at, e.recorded_at) for e in world.events
        ]
        check_figures(p, world, sc)

        # Rewind the committed positions and redeliver every record, in random chunks.
        rng = random.Random(seed)
        records = p.log.read(0, 0, end)
        with p.engine.begin() as conn:
            conn.execute(delete(schema.log_positions))
        applier = BatchApplier(p.engine)
        i = 0
        while i < len(records):
            k = rng.randint(1, len(records))
            applied = applier.apply(records[i : i + k])
            assert applied.dead == []
            assert applied.duplicates == len(records[i : i + k])
            i += k
        check_figures(p, world, sc)

        # Append raw copies (as a Kafka-direct producer resending would) and tail them.
        if records:
            copies = rng.sample(records, rng.randint(1, len(records)))
            p.log.append([(r.key, r.value) for r in copies])
            p.tailer.catch_up()
            check_figures(p, world, sc)
    finally:
        p.close()


def topological_shuffle(events: list[Event], rng: random.Random) -> list[Event]:
    """Shuffle, then put each problem's finding before its rectification."""
    out = events[:]
    rng.shuffle(out)
    where = {
        e.payload.problem_id: i for i, e in enumerate(out) if isinstance(e.payload, ev.ProblemFound)
    }
    for i, e in enumerate(out):
        if isinstance(e.payload, ev.ProblemRectified):
            j = where[e.payload.problem_id]
            if j > i:
                out[i], out[j] = out[j], out[i]
                where[e.payload.problem_id] = i
    return out


@FEWER
@given(sc=scenarios(independent=True), seed=st.integers(0, 2**32 - 1))
def test_order_of_independent_events_does_not_matter(sc: Scenario, seed: int) -> None:
    rng = random.Random(seed)
    campaign, facts = sc.events[0], sc.events[1:]
    order = [campaign, *topological_shuffle(facts, rng)]
    # as_of follows the batches, which differ between the two runs: ask without it.
    sc = replace(
        sc,
        queries=[(*q[:5], None) for q in sc.queries],
        coverage_queries=[(c, s, None, b) for c, s, _, b in sc.coverage_queries],
    )
    verdicts, world = expect(sc)
    assert set(verdicts) == {"accepted"}
    p, q = Pipeline.open(), Pipeline.open()
    try:
        assert run(p, sc) == verdicts
        other = replace(sc, events=order, batches=[len(order)], catch_up_after=[False])
        assert run(q, other) == verdicts
        check_figures(p, world, sc)
        check_figures(q, world, sc)
    finally:
        p.close()
        q.close()


def test_ids_sharing_a_prefix_do_not_leak_into_each_other() -> None:
    """'420581-x', '420581.y' and '4205810' sort around '420581/...': subtree ranges and
    fact paths (sub-hour edges, as_of) must still keep them apart."""
    tricky = ["420581", "420581-x", "420581.y", "4205810", "420581_z"]
    regs = [
        Event(
            "ref:city",
            "reference",
            1,
            REF_TIME,
            0,
            ev.OrgUnitRegistered(CITY, "", Level.CITY, "city"),
        )
    ]
    for i, u in enumerate(tricky, start=2):
        regs.append(
            Event(
                f"ref:{u}",
                "reference",
                i,
                REF_TIME,
                0,
                ev.OrgUnitRegistered(u, CITY, Level.COUNTY, u),
            )
        )
        regs.append(
            Event(
                f"ref:{u}t",
                "reference",
                100 + i,
                REF_TIME,
                0,
                ev.OrgUnitRegistered(f"{u}t", u, Level.TOWNSHIP, u),
            )
        )
    facts = []
    for i, u in enumerate(tricky):
        for j, unit_id in enumerate((u, f"{u}t")):
            facts.append(
                Event(
                    f"f{i}{j}",
                    u,
                    1 + j,
                    BASE + (10 * i + j) * 60 * NS + 7,
                    0,
                    ev.SanctionImposed(unit_id, "grain", 10**i * (j + 1)),
                )
            )
    p = Pipeline.open()
    try:
        p.clock.now = CLOCK0
        assert set(kinds(p.publish([to_pb(e) for e in regs], allow_reference=True))) == {"accepted"}
        p.clock.now = CLOCK0 + 60 * NS
        assert set(kinds(p.publish([to_pb(e) for e in facts[:5]]))) == {"accepted"}
        p.clock.now = CLOCK0 + 120 * NS
        assert set(kinds(p.publish([to_pb(e) for e in facts[5:]]))) == {"accepted"}
        p.tailer.catch_up()
        world = oracle.World(
            [replace(e, recorded_at=CLOCK0) for e in regs]
            + [replace(e, recorded_at=CLOCK0 + 60 * NS) for e in facts[:5]]
            + [replace(e, recorded_at=CLOCK0 + 120 * NS) for e in facts[5:]]
        )
        # Sub-hour bounds are answered from fact rows by path; whole hours from rollups.
        bounds = [
            (None, None),
            (BASE, BASE + HOUR),
            (BASE + 1, BASE + 45 * 60 * NS),
            (BASE + 5 * 60 * NS, None),
        ]
        for scope in ["", *tricky, *(f"{u}t" for u in tricky)]:
            for lo, hi in bounds:
                for as_of in (None, CLOCK0 + 60 * NS):
                    (row,) = statistics(
                        p.engine, ["sanctioned_persons"], scope, "", lo, hi, "", as_of
                    )
                    want = world.figures(scope, "", lo, hi, as_of)["sanctioned_persons"]
                    assert row.values["sanctioned_persons"] == want, (scope, lo, hi, as_of)
        (row,) = statistics(p.engine, ["sanctioned_persons"], "420581", "", BASE + 1, None)
        assert row.values["sanctioned_persons"] == 3
    finally:
        p.close()
