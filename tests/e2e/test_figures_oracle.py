"""Hand-picked tricky event sequences over real gRPC, checked against an oracle of this file.

The oracle reads the contract's definitions (CONTRACT.md, "Metrics") and nothing of duhub: it
keeps the protobuf events answered ACCEPTED, with the batch each came in, and counts every
figure by scanning them. The hub is in-process (`duhub.bootstrap.Hub`, embedded log and
SQLite) holding the reference hierarchy; questions go through GetStatistics and GetCoverage.

What tests/e2e/test_fuzz_ingest.py does not ask and this does: periods (every group_by kind)
at their edges to the nanosecond (year end, leap day, week start), `as_of` between batches
(a rectification published after the moment asked about, a unit registered later), person
sums at every tier including events on the scope unit itself, duplicates and resends with a
client's own `recorded_at`, and coverage at the window's edges and for visits that are real
but cover nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from kafka import KafkaProducer

from duhub.bootstrap import Hub, HubConfig
from duhub.log.kafka import KafkaSpec
from duhub.reference import reference_units
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc, query_pb2_grpc
from duhub.v1 import query_pb2 as qpb
from tests.infra import fresh_database, kafka_log_url
from tests.integration.test_kafka_direct import dead_letters
from tests.unit.builders import (
    accountability,
    at,
    campaign,
    group,
    letter,
    problem,
    rectify,
    regulation,
    sanction,
    talk,
    ts,
    unit,
    visit,
)
from tests.unit.oracle import METRICS  # the contract's list, as the other oracle reads it

NS = 1_000_000_000
CITY = "420500"
YIDU, DANG = "420581", "420582"
Y_T1, Y_T2 = "420581101", "420581102"
Y_V1, Y_V2 = "420581101201", "420581101202"
D_T1, D_V1 = "420582101", "420582101201"
NEW_V = "420581101299"  # registered by the test, in the second batch
TALK_KIND = {
    pb.TALK_KIND_TOP_LEADER: "talk_persons_top_leader",
    pb.TALK_KIND_ADMONISHMENT: "talk_persons_admonishment",
    pb.TALK_KIND_OTHER: "talk_persons_other",
}
GROUP_BY = {
    "unit": qpb.GROUP_BY_UNIT,
    "day": qpb.GROUP_BY_DAY,
    "week": qpb.GROUP_BY_WEEK,
    "month": qpb.GROUP_BY_MONTH,
    "quarter": qpb.GROUP_BY_QUARTER,
    "year": qpb.GROUP_BY_YEAR,
}


# ---------------------------------------------------------------------------------------------
# The oracle: the contract's definitions over the accepted protobuf events.


@dataclass
class Oracle:
    parent: dict[str, str]
    accepted: list[tuple[pb.Event, int]] = field(default_factory=list)  # (event, batch)
    found: dict[str, pb.ProblemFound] = field(default_factory=dict)

    def take(self, e: pb.Event, batch: int) -> None:
        if e.WhichOneof("payload") == "org_unit_registered":
            self.parent[e.org_unit_registered.unit_id] = e.org_unit_registered.parent_id
        if e.WhichOneof("payload") == "problem_found":
            self.found[e.problem_found.problem_id] = e.problem_found
        self.accepted.append((e, batch))

    def within(self, unit_id: str, scope: str) -> bool:
        while unit_id:
            if unit_id == scope:
                return True
            unit_id = self.parent[unit_id]
        return False

    def seen(self, upto: int | None) -> list[pb.Event]:
        """The events recorded by the end of batch `upto` (None: all)."""
        return [e for e, b in self.accepted if upto is None or b <= upto]

    def problem(self, problem_id: str) -> pb.ProblemFound:
        assert problem_id in self.found, f"accepted rectification of unknown {problem_id}"
        return self.found[problem_id]

    def counted(self, e: pb.Event) -> list[tuple[str, str, str, int]]:
        """(metric, unit, area, value) of one event."""
        kind = e.WhichOneof("payload")
        p = getattr(e, kind)
        if kind == "supervision_visit":
            return [("visits", p.unit_id, p.area, 1)]
        if kind == "problem_found":
            return [("problems_found", p.unit_id, p.area, 1)]
        if kind == "problem_rectified":  # the problem's unit and area, at its own time
            found = self.problem(p.problem_id)
            return [("problems_rectified", found.unit_id, found.area, 1)]
        if kind == "accountability_imposed":
            return [("accountability_persons", p.unit_id, p.area, p.persons)]
        if kind == "sanction_imposed":
            return [("sanctioned_persons", p.unit_id, p.area, p.persons)]
        if kind == "talk_held":
            return [
                ("talk_persons", p.unit_id, p.area, p.persons),
                (TALK_KIND[p.kind], p.unit_id, p.area, p.persons),
            ]
        if kind == "recommendation_issued":
            return [("recommendations", p.unit_id, p.area, 1)]
        if kind == "regulation_improved":
            return [("regulations_improved", p.unit_id, p.area, p.count)]
        return []

    def figures(
        self, scope: str, area: str, lo: int | None, hi: int | None, upto: int | None
    ) -> dict[str, int]:
        out = dict.fromkeys(METRICS, 0)
        seen = self.seen(upto)

        def when(e: pb.Event) -> int:
            return e.occurred_at.seconds * NS + e.occurred_at.nanos

        for e in seen:
            t = when(e)
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                continue
            for metric, unit_id, a, value in self.counted(e):
                if self.within(unit_id, scope) and (not area or a == area):
                    out[metric] += value
        # "problems_open is the problems found before `to` and not rectified before `to`"
        closed = {
            e.problem_rectified.problem_id
            for e in seen
            if e.WhichOneof("payload") == "problem_rectified" and (hi is None or when(e) < hi)
        }
        for e in seen:
            if e.WhichOneof("payload") != "problem_found" or (hi is not None and when(e) >= hi):
                continue
            p = e.problem_found
            if self.within(p.unit_id, scope) and (not area or p.area == area):
                out["problems_open"] += p.problem_id not in closed
        return out

    def children(self, scope: str, upto: int | None) -> list[str]:
        known = set(self.parent) - {
            e.org_unit_registered.unit_id
            for e, b in self.accepted
            if e.WhichOneof("payload") == "org_unit_registered" and upto is not None and b > upto
        }
        return sorted(u for u, p in self.parent.items() if p == scope and u in known)


def midnight(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * NS


def period_key(kind: str, d: date) -> date:
    if kind == "week":  # the README: weeks start on Monday
        return d - timedelta(days=d.weekday())
    if kind == "month":
        return d.replace(day=1)
    if kind == "quarter":
        return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)
    if kind == "year":
        return d.replace(month=1, day=1)
    return d


def calendar(kind: str, lo: int, hi: int) -> list[tuple[str, int, int]]:
    """The periods meeting [lo, hi), clipped to it, walked a day at a time."""
    out: list[tuple[str, int, int]] = []
    d = datetime.fromtimestamp(lo // NS, UTC).date()
    while midnight(d) < hi:
        key = period_key(kind, d).isoformat()
        if not out or out[-1][0] != key:
            out.append((key, max(lo, midnight(period_key(kind, d))), 0))
        d += timedelta(days=1)
        out[-1] = (key, out[-1][1], min(hi, midnight(d)))
    return out


# ---------------------------------------------------------------------------------------------
# The hub, and the scenario published to it once.


@dataclass
class Session:
    hub: Hub
    ingest: ingest_pb2_grpc.IngestServiceStub
    query: query_pb2_grpc.QueryServiceStub
    oracle: Oracle
    # marks[k]: a moment after batch k was recorded and before batch k+1 was sent.
    marks: list[int] = field(default_factory=list)
    results: dict[str, list[str]] = field(default_factory=dict)  # event_id -> its verdicts
    ends: dict[int, int] = field(default_factory=dict)

    def publish(self, events: list[pb.Event]) -> None:
        batch = len(self.marks)
        reply = self.ingest.Publish(ipb.PublishRequest(events=events), timeout=30)
        for e, r in zip(events, reply.results, strict=True):
            verdict = ipb.Result.Name(r.result).removeprefix("RESULT_").lower()
            self.results.setdefault(e.event_id, []).append(
                verdict + (f" {r.field}" * bool(r.field))
            )
            if r.result == ipb.RESULT_ACCEPTED:
                self.oracle.take(e, batch)
                self.ends[r.partition] = max(self.ends.get(r.partition, 0), r.offset + 1)
        self.wait_applied()
        time.sleep(0.002)
        self.marks.append(time.time_ns())
        time.sleep(0.002)

    def wait_applied(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            progress = self.query.GetProgress(qpb.GetProgressRequest(), timeout=30)
            applied = {p.partition: p.applied for p in progress.partitions}
            if all(applied.get(p, 0) >= end for p, end in self.ends.items()):
                return
            assert time.monotonic() < deadline, "the read model never caught up"
            time.sleep(0.02)

    def stats(
        self,
        scope: str = "",
        area: str = "",
        lo: int | None = None,
        hi: int | None = None,
        group_by: str = "",
        as_of: int | None = None,
    ) -> list[tuple[str, dict[str, int]]]:
        req = qpb.GetStatisticsRequest(
            metrics=METRICS, scope_unit_id=scope, area=area, group_by=GROUP_BY.get(group_by, 0)
        )
        if lo is not None:
            getattr(req, "from").CopyFrom(ts(lo))
        if hi is not None:
            req.to.CopyFrom(ts(hi))
        if as_of is not None:
            req.as_of.CopyFrom(ts(as_of))
        reply = self.query.GetStatistics(req, timeout=30)
        return [(r.key, {m: r.values.get(m, 0) for m in METRICS}) for r in reply.rows]

    def want(
        self,
        scope: str = "",
        area: str = "",
        lo: int | None = None,
        hi: int | None = None,
        group_by: str = "",
        as_of_batch: int | None = None,
    ) -> list[tuple[str, dict[str, int]]]:
        o, scope = self.oracle, scope or CITY
        if group_by == "unit":
            return [
                (c, o.figures(c, area, lo, hi, as_of_batch)) for c in o.children(scope, as_of_batch)
            ]
        if group_by:
            assert lo is not None and hi is not None
            return [
                (key, o.figures(scope, area, a, b, as_of_batch))
                for key, a, b in calendar(group_by, lo, hi)
            ]
        return [("", o.figures(scope, area, lo, hi, as_of_batch))]

    def check(self, **question) -> list[tuple[str, dict[str, int]]]:
        batch = question.pop("as_of_batch", None)
        as_of = None if batch is None else self.marks[batch]
        got = self.stats(**question, as_of=as_of)
        want = self.want(**question, as_of_batch=batch)
        assert got == want, (question, batch)
        return got


def ev(builder, *args, eid: str, source: str, seq: int, t: int, **kw) -> pb.Event:  # type: ignore[no-untyped-def]
    return builder(*args, event_id=eid, source=source, seq=seq, occurred_at=t, **kw)


Y2022_END = at("2023-01-01")  # midnight UTC: the first instant of 2023
LEAP = at("2024-02-29")


def numbered(first: int):  # type: ignore[no-untyped-def]
    """Return a builder numbering each source's events from `first` on."""
    seqs = {YIDU: first, DANG: first, CITY: first}

    def e(builder, *args, source: str = YIDU, t: int, eid: str, **kw):  # type: ignore[no-untyped-def]
        seqs[source] += 1
        return ev(builder, *args, eid=eid, source=source, seq=seqs[source], t=t, **kw)

    return e


def batch_one() -> list[pb.Event]:
    """Problems found, persons at every tier, period edges."""
    e = numbered(0)
    last_ns = Y2022_END - 1
    return [
        # Found in the last nanosecond of 2022; rectified at 2023's first (batch two).
        e(problem, "p-edge", Y_V1, "ecology", t=last_ns, eid="b1-p-edge"),
        # Found in one quarter, rectified in the next (batch two), in another area.
        e(problem, "p-q", Y_T1, "epidemic", t=at("2022-09-30T23:00:00"), eid="b1-p-q"),
        # Found at Dangyang, never rectified.
        e(problem, "p-open", D_V1, "grain", source=DANG, t=at("2022-05-05"), eid="b1-p-open"),
        # A rectification arriving before its problem: rejected (unknown problem).
        e(rectify, "p-late", t=at("2022-06-02"), eid="b1-r-late"),
        e(rectify, "p-never", t=at("2022-06-02"), eid="b1-r-never"),
        e(problem, "p-late", Y_T2, "ecology", t=at("2022-06-01"), eid="b1-p-late"),
        # Persons at each tier of Yidu, and on the city itself.
        e(accountability, Y_V1, 3, "ecology", t=at("2022-03-01T10:00:00"), eid="b1-a-v"),
        e(accountability, Y_T1, 5, "ecology", t=at("2022-03-01T10:00:00"), eid="b1-a-t"),
        e(accountability, YIDU, 7, "ecology", t=at("2022-03-01T10:00:00"), eid="b1-a-c"),
        e(accountability, CITY, 11, "ecology", source=CITY, t=at("2022-03-01"), eid="b1-a-city"),
        e(accountability, D_V1, 13, "epidemic", source=CITY, t=at("2022-03-01"), eid="b1-a-d"),
        e(sanction, Y_V2, 100_000, "grain", t=at("2022-12-31T23:59:59.999999"), eid="b1-s-1"),
        e(sanction, Y_V2, 99_999, "grain", t=Y2022_END, eid="b1-s-2"),
        # Talks of each kind, one with no area.
        e(talk, Y_V1, 2, pb.TALK_KIND_TOP_LEADER, "", t=at("2022-07-04"), eid="b1-t-1"),
        e(
            talk,
            Y_T2,
            4,
            pb.TALK_KIND_ADMONISHMENT,
            "ecology",
            t=at("2022-07-03T23:59:59"),
            eid="b1-t-2",
        ),
        e(
            talk,
            D_T1,
            8,
            pb.TALK_KIND_OTHER,
            "grain",
            source=DANG,
            t=at("2022-07-10"),
            eid="b1-t-3",
        ),
        # Leap day and the days about it.
        e(letter, "l-1", Y_V1, "grain", t=LEAP - 1, eid="b1-l-1"),
        e(letter, "l-2", Y_V1, "grain", t=LEAP, eid="b1-l-2"),
        e(letter, "l-3", Y_T1, "grain", t=LEAP + 86_400 * NS - 1, eid="b1-l-3"),
        e(letter, "l-4", Y_T1, "grain", t=LEAP + 86_400 * NS, eid="b1-l-4"),
        e(regulation, Y_V2, 6, "ecology", t=at("2024-03-31T23:59:59"), eid="b1-reg-1"),
        e(regulation, Y_V2, 9, "ecology", t=at("2024-04-01"), eid="b1-reg-2"),
        # On the very first and last valid instants.
        e(sanction, Y_T1, 1, "ecology", t=at("2000-01-01"), eid="b1-s-first"),
    ]


@pytest.fixture(scope="module", params=["embedded-sqlite", "kafka-postgres"])
def session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    data = tmp_path_factory.mktemp("figures") / "data"
    with ExitStack() as stack:
        config = HubConfig(data, listen="127.0.0.1:0")
        if request.param == "kafka-postgres":
            db_url = stack.enter_context(fresh_database())
            config = replace(config, log_url=kafka_log_url(partitions=3), db_url=db_url)
        yield from _session(config)


def _session(config: HubConfig) -> Iterator[Session]:
    hub = Hub(config)
    hub.start()
    channel = grpc.insecure_channel(hub.address)

    parents = {u["unit_id"]: u.get("parent_id", "") for u in reference_units()}
    s = Session(
        hub,
        ingest_pb2_grpc.IngestServiceStub(channel),
        query_pb2_grpc.QueryServiceStub(channel),
        Oracle(parents),
    )
    try:
        s.publish(batch_one())
        second = batch_two()
        s.publish(second)
        s.publish(batch_three(second[0]))
        yield s
    finally:
        channel.close()
        hub.stop()


def batch_two() -> list[pb.Event]:
    """Rectifications recorded after the first batch; a new village with events."""
    e2 = numbered(100)
    return [
        e2(rectify, "p-edge", source=CITY, t=Y2022_END, eid="b2-r-edge"),
        e2(rectify, "p-q", t=at("2022-10-01"), eid="b2-r-q"),
        e2(rectify, "p-late", t=at("2022-06-02"), eid="b2-r-late"),
        e2(unit, NEW_V, Y_T1, pb.LEVEL_VILLAGE, t=at("2022-02-01"), eid="b2-new-v"),
        e2(accountability, NEW_V, 17, "ecology", t=at("2022-03-01"), eid="b2-a-new"),
        e2(problem, "p-new", NEW_V, "ecology", t=at("2022-03-02"), eid="b2-p-new"),
    ]


def batch_three(rectified: pb.Event) -> list[pb.Event]:
    """Resends: the same event again (one with a client's recorded_at), a conflicting one,
    and a second rectification."""
    again = batch_one()[6]  # b1-a-v
    with_recorded = batch_one()[7]  # b1-a-t, with a client's recorded_at (ignored)
    with_recorded.recorded_at.CopyFrom(ts(at("2030-01-01")))
    conflicting = batch_one()[8]  # b1-a-c with other persons
    conflicting.accountability_imposed.persons = 70
    return [
        again,
        with_recorded,
        conflicting,
        numbered(200)(rectify, "p-edge", source=CITY, t=at("2023-02-01"), eid="b3-r-edge-again"),
        rectified,  # the same, resent
    ]


# ---------------------------------------------------------------------------------------------
# The verdicts the scenario relies on.


def test_verdicts(session: Session) -> None:
    r = session.results
    assert r["b1-r-late"] == ["rejected problem_rectified.problem_id"]
    assert r["b1-r-never"] == ["rejected problem_rectified.problem_id"]
    assert r["b2-r-edge"] == ["accepted", "duplicate"]
    assert r["b3-r-edge-again"] == ["rejected problem_rectified.problem_id"]
    assert r["b1-a-v"] == ["accepted", "duplicate"]
    assert r["b1-a-t"] == ["accepted", "duplicate"], "a client's recorded_at is ignored"
    assert r["b1-a-c"] == ["accepted", "rejected event_id"]
    assert all(
        v[0] == "accepted"
        for k, v in r.items()
        if k.startswith(("b1-", "b2-")) and k not in ("b1-r-late", "b1-r-never")
    )


# ---------------------------------------------------------------------------------------------
# Figures.

SCOPES = (CITY, YIDU, DANG, Y_T1, Y_T2, Y_V1, Y_V2, NEW_V, D_T1, D_V1)
AREAS = ("", "ecology", "epidemic", "grain")


@pytest.mark.parametrize("scope", SCOPES)
def test_all_time_by_scope_and_area(session: Session, scope: str) -> None:
    for area in AREAS:
        session.check(scope=scope, area=area)


def test_person_sums_up_the_hierarchy(session: Session) -> None:
    """Spelled out once, so the oracle itself is checked: 3 + 5 + 7 + 17 at Yidu (the county
    itself included), 11 on the city itself, 13 at Dangyang."""

    def persons(scope: str) -> int:
        return session.stats(scope=scope, lo=at("2022-03-01"), hi=at("2022-03-02"))[0][1][
            "accountability_persons"
        ]

    assert [persons(u) for u in (Y_V1, Y_T1, YIDU, DANG, CITY)] == [3, 25, 32, 13, 56]
    by_county = dict(session.stats(group_by="unit", lo=at("2022-03-01"), hi=at("2022-03-02")))
    assert by_county[YIDU]["accountability_persons"] == 32
    assert sum(v["accountability_persons"] for v in by_county.values()) == 45  # not the city's


@pytest.mark.parametrize("scope", (CITY, YIDU, Y_T1))
@pytest.mark.parametrize("batch", (None, 0, 1))
def test_by_unit(session: Session, scope: str, batch: int | None) -> None:
    for area in AREAS:
        for lo, hi in ((None, None), (at("2022-01-01"), Y2022_END), (Y2022_END - 1, Y2022_END)):
            session.check(scope=scope, area=area, lo=lo, hi=hi, group_by="unit", as_of_batch=batch)


PERIODS = (
    (at("2022-01-01"), at("2024-12-31")),
    (Y2022_END - 1, Y2022_END + 1),
    (at("2022-09-30T12:00:00"), at("2023-01-01T00:00:01")),
    (LEAP - 1, LEAP + 86_400 * NS + 1),
    (at("2024-02-26T00:00:00.5"), at("2024-04-02")),
    (at("2022-06-29"), at("2022-07-12")),
    (at("2000-01-01"), at("2000-01-02")),
)


@pytest.mark.parametrize("kind", ("day", "week", "month", "quarter", "year"))
@pytest.mark.parametrize("batch", (None, 0))
def test_by_period(session: Session, kind: str, batch: int | None) -> None:
    for lo, hi in PERIODS:
        if kind == "day" and hi - lo > 400 * 86_400 * NS:
            continue
        for scope in (CITY, YIDU, Y_V1):
            for area in ("", "ecology", "grain"):
                session.check(
                    scope=scope, area=area, lo=lo, hi=hi, group_by=kind, as_of_batch=batch
                )


def test_from_and_to_edges_to_the_nanosecond(session: Session) -> None:
    for lo, hi in (
        (Y2022_END - 1, Y2022_END),
        (Y2022_END, Y2022_END + 1),
        (None, Y2022_END),
        (Y2022_END, None),
        (LEAP, LEAP + 1),
        (LEAP - 1, LEAP),
    ):
        for scope in (CITY, YIDU, Y_V1, Y_V2):
            for batch in (None, 0, 1):
                session.check(scope=scope, lo=lo, hi=hi, as_of_batch=batch)


def test_rectification_across_periods_and_as_of(session: Session) -> None:
    """p-edge: found in 2022's last nanosecond, rectified at 2023's first, recorded later."""
    year = {"lo": at("2022-01-01"), "hi": at("2024-01-01"), "group_by": "year"}
    now = dict(session.check(scope=Y_V1, area="ecology", **year))
    assert (now["2022-01-01"]["problems_open"], now["2023-01-01"]["problems_open"]) == (1, 0)
    assert now["2023-01-01"]["problems_rectified"] == 1
    then = dict(session.check(scope=Y_V1, area="ecology", as_of_batch=0, **year))
    assert (then["2022-01-01"]["problems_open"], then["2023-01-01"]["problems_open"]) == (1, 1)
    assert then["2023-01-01"]["problems_rectified"] == 0


# ---------------------------------------------------------------------------------------------
# Coverage: "1+7+N" at the window's edges.

WINDOW = (at("2022-11-01"), at("2023-01-01"))


def coverage_events() -> list[pb.Event]:
    seq = iter(range(1000, 2000))

    def e(builder, *args, source: str = CITY, t: int, eid: str, **kw):  # type: ignore[no-untyped-def]
        return ev(builder, *args, eid=eid, source=source, seq=next(seq), t=t, **kw)

    lo, hi = WINDOW
    groups = [
        group("tf", pb.TIER_TASK_FORCE),
        group("city-1", pb.TIER_CITY, YIDU, DANG),
        group("yidu", pb.TIER_COUNTY, Y_T1, Y_T2, Y_V1),
        group("dang", pb.TIER_COUNTY, D_T1),
    ]
    return [
        e(campaign, "cov", groups, lo, hi, eid="c-launch", t=lo - NS),
        e(visit, YIDU, "cov", "city-1", eid="c-1", t=lo),  # at the start: covers
        e(visit, DANG, "cov", "city-1", eid="c-2", t=hi),  # at the end: covers nothing
        e(visit, Y_V2, "cov", "yidu", eid="c-3", t=lo + NS),  # not a target (a sibling)
        e(visit, Y_T1, "cov", "dang", eid="c-4", t=lo + NS),  # a target, of another group
        e(visit, Y_T2, "", "", eid="c-5", t=lo + NS),  # outside any campaign
        e(visit, Y_V1, "cov", "yidu", eid="c-6", t=hi - 1),  # the last nanosecond: covers
        e(visit, Y_V1, "cov", "yidu", eid="c-7", t=hi - 2),  # twice: covers once
        e(visit, D_T1, "cov", "dang", eid="c-8", t=lo - 1),  # before the window
    ]


def test_coverage(session: Session) -> None:
    events = coverage_events()
    session.publish(events)
    for e in events:
        assert session.results[e.event_id] == ["accepted"], e.event_id
    want = {  # group -> uncovered targets
        "tf": [],
        "city-1": [DANG],
        "yidu": [Y_T1, Y_T2],
        "dang": [D_T1],
    }
    got = session.query.GetCoverage(qpb.GetCoverageRequest(campaign_id="cov"), timeout=30)
    assert {g.group_id: sorted(g.uncovered_unit_ids) for g in got.groups} == want
    assert {g.group_id: (g.targets, g.covered) for g in got.groups} == {
        "tf": (0, 0),
        "city-1": (2, 1),
        "yidu": (3, 1),
        "dang": (1, 0),
    }
    assert {t.tier: (t.targets, t.covered) for t in got.tiers if t.targets} == {
        pb.TIER_CITY: (2, 1),
        pb.TIER_COUNTY: (4, 1),
    }
    # Per tier too (the contract's "per tier and per group: … the uncovered unit ids"): its
    # groups' uncovered targets, group after group.
    assert {t.tier: list(t.uncovered_unit_ids) for t in got.tiers} == {
        pb.TIER_TASK_FORCE: [],
        pb.TIER_CITY: [DANG],
        pb.TIER_COUNTY: [Y_T1, Y_T2, D_T1],
    }
    assert not got.full
    # Scoped to Yidu: only targets in its subtree count.
    yidu = session.query.GetCoverage(
        qpb.GetCoverageRequest(campaign_id="cov", scope_unit_id=YIDU), timeout=30
    )
    assert {g.group_id: (g.targets, g.covered) for g in yidu.groups} == {
        "tf": (0, 0),
        "city-1": (1, 1),
        "yidu": (3, 1),
        "dang": (0, 0),
    }
    # Lineage: the visit that covered each covered target; of Y_V1's two, the earlier (c-7).
    lineage = session.query.ExplainCoverage(
        qpb.ExplainCoverageRequest(campaign_id="cov"), timeout=30
    )
    assert (lineage.targets, lineage.covered) == (6, 2)
    assert [(v.group_id, v.unit_id, v.event_id) for v in lineage.visits] == [
        ("city-1", YIDU, "c-1"),
        ("yidu", Y_V1, "c-7"),
    ]
    assert [v.occurred_at.ToNanoseconds() for v in lineage.visits] == [WINDOW[0], WINDOW[1] - 2]
    # Every visit is real: counted in visits whether it covers or not.
    session.check(scope=CITY, lo=WINDOW[0] - NS, hi=WINDOW[1] + NS)
    session.check(scope=CITY, lo=WINDOW[0], hi=WINDOW[1], group_by="month")


@pytest.mark.parametrize("metric", METRICS)
def test_explain_totals(session: Session, metric: str) -> None:
    for scope in (CITY, YIDU, Y_T1, Y_V1, Y_V2, DANG):
        for area in AREAS:
            for lo, hi in (
                (None, None),
                (at("2022-01-01"), Y2022_END),
                (Y2022_END, None),
                (None, at("2022-10-01")),
            ):
                for batch in (None, 0, 1):
                    req = qpb.ExplainRequest(
                        metric=metric, scope_unit_id=scope, area=area, limit=1000
                    )
                    if lo is not None:
                        getattr(req, "from").CopyFrom(ts(lo))
                    if hi is not None:
                        req.to.CopyFrom(ts(hi))
                    if batch is not None:
                        req.as_of.CopyFrom(ts(session.marks[batch]))
                    got = session.query.Explain(req, timeout=30)
                    want = session.oracle.figures(scope, area, lo, hi, batch)[metric]
                    assert got.total == want, (metric, scope, area, lo, hi, batch)
                    if not got.truncated and metric != "problems_open":
                        assert sum(c.value for c in got.events) == want


CLI_QUESTIONS = [
    # (arguments, scope, area, lo, hi, group_by, as_of batch)
    (
        ["--from", "2022-12-31T23:59:59.999999999Z", "--to", "2023-01-01T08:00:00.000000001+08:00"],
        CITY,
        "",
        Y2022_END - 1,
        Y2022_END + 1,
        "",
        None,
    ),
    (
        ["--from", "2024-02-29", "--to", "2024-03-01", "--scope", Y_V1],
        Y_V1,
        "",
        LEAP,
        LEAP + 86_400 * NS,
        "",
        None,
    ),
    (
        [
            "--from",
            "2022-01-01",
            "--to",
            "2024-12-31",
            "--group-by",
            "quarter",
            "--area",
            "ecology",
            "--scope",
            YIDU,
        ],
        YIDU,
        "ecology",
        at("2022-01-01"),
        at("2024-12-31"),
        "quarter",
        None,
    ),
    (["--group-by", "unit", "--scope", Y_T1, "--as-of", "MARK1"], Y_T1, "", None, None, "unit", 0),
    (
        ["--from", "2022-06-29", "--to", "2022-07-12", "--group-by", "week"],
        CITY,
        "",
        at("2022-06-29"),
        at("2022-07-12"),
        "week",
        None,
    ),
]


@pytest.mark.parametrize("question", CLI_QUESTIONS, ids=lambda q: " ".join(q[0]))
def test_cli_query_stats(session: Session, question: tuple) -> None:
    args, scope, area, lo, hi, group_by, batch = question
    if batch is not None:
        moment = datetime.fromtimestamp(session.marks[batch] // NS, UTC)
        nanos = session.marks[batch] % NS
        text = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
        args = [text if a == "MARK1" else a for a in args]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "duhub.cli.main",
            "query",
            "stats",
            "--target",
            session.hub.address,
            "--json",
            "--metric",
            ",".join(METRICS),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = [
        (r["key"], {m: int(r["values"].get(m, 0)) for m in METRICS})
        for r in json.loads(out)["rows"]
    ]
    want = session.want(scope, area, lo, hi, group_by, batch)
    assert rows == want


def test_as_of_at_the_very_moment_an_event_was_recorded(session: Session) -> None:
    """'only events recorded (appended) at or before it count': at its record time, not 1 ns
    before."""
    req = qpb.ExplainRequest(metric="accountability_persons", scope_unit_id=NEW_V, limit=10)
    (contribution,) = session.query.Explain(req, timeout=30).events
    recorded = contribution.recorded_at.seconds * NS + contribution.recorded_at.nanos
    for as_of, want in ((recorded, 17), (recorded - 1, 0)):
        for scope in (NEW_V, Y_T1, YIDU, CITY):
            (row,) = session.stats(
                scope=scope, lo=at("2022-03-01"), hi=at("2022-03-02"), as_of=as_of
            )
            base = {Y_T1: 5 + 3, YIDU: 15, CITY: 15 + 11 + 13}.get(scope, 0)
            assert row[1]["accountability_persons"] == base + want, (scope, as_of - recorded)


# Kafka-direct needs the Kafka log: this test runs on that backend only (not a skip).
@pytest.mark.parametrize("session", ["kafka-postgres"], indirect=True)
def test_kafka_direct_figures(session: Session) -> None:
    """Kafka-direct events: the same checks, so the same figures (CONTRACT: 'the hub applies
    the same validation and sends what fails to a dead-letter topic')."""
    assert session.hub.config.log_url
    spec = KafkaSpec.parse(session.hub.config.log_url)
    seq = iter(range(500, 600))

    def e(builder, *args, t: int, eid: str, **kw):  # type: ignore[no-untyped-def]
        return ev(builder, *args, eid=eid, source=DANG, seq=next(seq), t=t, **kw)

    found = e(problem, "kd-p1", D_V1, "ecology", t=at("2022-08-01"), eid="kd-p1")
    persons = e(accountability, D_T1, 21, "ecology", t=at("2022-08-01"), eid="kd-a")
    conflicting = pb.Event()
    conflicting.CopyFrom(persons)
    conflicting.accountability_imposed.persons = 22
    fixed = e(rectify, "kd-p1", t=at("2022-08-03"), eid="kd-r2")
    sent = [
        e(rectify, "kd-p1", t=at("2022-08-02"), eid="kd-r1"),  # before its problem: rejected
        found,
        persons,
        persons,  # the same again: counted once
        conflicting,  # the same id, other content: rejected
        fixed,
        next(x for x, _ in session.oracle.accepted if x.event_id == "b1-t-3"),  # ingest's
    ]
    batch = len(session.marks)
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
    futures = [
        producer.send(spec.topic, key=DANG.encode(), value=x.SerializeToString()) for x in sent
    ]
    producer.flush()
    metas = [f.get(timeout=30) for f in futures]
    producer.close()
    for m in metas:
        session.ends[m.partition] = max(session.ends.get(m.partition, 0), m.offset + 1)
    session.wait_applied()
    time.sleep(0.002)
    session.marks.append(time.time_ns())
    for x in (found, persons, fixed):
        session.oracle.take(x, batch)
    reasons = sorted(h["duhub-reason"].split(":")[0] for _, h in dead_letters(spec, want=2))
    assert reasons == ["event_id", "problem_rectified.problem_id"]
    for scope in (CITY, DANG, D_T1, D_V1):
        for area in ("", "ecology"):
            for b in (None, batch - 1):
                session.check(scope=scope, area=area, as_of_batch=b)
                session.check(
                    scope=scope,
                    area=area,
                    lo=at("2022-07-01"),
                    hi=at("2022-09-01"),
                    group_by="day",
                    as_of_batch=b,
                )


def test_watch_coverage_pushes_what_get_coverage_answers(session: Session) -> None:
    lo, hi = WINDOW
    seq = iter(range(3000, 3100))

    def e(builder, *args, t: int, eid: str, **kw):  # type: ignore[no-untyped-def]
        return ev(builder, *args, eid=eid, source=CITY, seq=next(seq), t=t, **kw)

    groups = [group("c1", pb.TIER_CITY, YIDU, DANG), group("y", pb.TIER_COUNTY, Y_T1, Y_V1)]
    session.publish([e(campaign, "watch", groups, lo, hi, eid="w-launch", t=lo)])
    stream = session.query.WatchCoverage(
        qpb.WatchCoverageRequest(campaign_id="watch", scope_unit_id=YIDU), timeout=60
    )
    first = next(stream)
    assert [(g.group_id, g.covered) for g in first.groups] == [("c1", 0), ("y", 0)]
    steps = [
        [e(visit, YIDU, "watch", "c1", eid="w-1", t=hi)],  # outside the window: no change
        [e(visit, Y_V1, "watch", "y", eid="w-2", t=hi - 1)],
        [
            e(visit, YIDU, "watch", "c1", eid="w-3", t=lo),
            e(visit, Y_T1, "watch", "y", eid="w-4", t=lo),
        ],
    ]
    for step in steps[1:]:
        session.publish(step if step is not steps[1] else steps[0] + step)
        pushed = next(stream)
        want = session.query.GetCoverage(
            qpb.GetCoverageRequest(campaign_id="watch", scope_unit_id=YIDU), timeout=30
        )
        pushed.ClearField("as_of")
        want.ClearField("as_of")
        assert pushed == want
    assert pushed.full and [(g.group_id, g.covered) for g in pushed.groups] == [("c1", 1), ("y", 2)]
    stream.cancel()
