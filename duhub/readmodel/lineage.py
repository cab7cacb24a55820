"""Lineage: the events that make up one figure, from the fact rows; they add up to it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, or_, select

from duhub.domain import metrics as m
from duhub.domain.events import Nanos
from duhub.projections.timegrid import MAX_NS, MIN_NS
from duhub.readmodel import schema as s
from duhub.readmodel.engine import snapshot
from duhub.readmodel.stats_rules import QueryError, check_area, check_period
from duhub.readmodel.units import resolve_scope, subtree_clause

DEFAULT_LIMIT = 1000
# The most events one answer lists: at their longest (~300 bytes each) they fit in the 32 MiB
# a gRPC reply may take; more could not be sent at all.
MAX_EXPLAIN_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Contribution:
    event_id: str
    source: str
    seq: int
    occurred_at: Nanos
    recorded_at: Nanos
    partition: int
    offset: int
    unit_id: str
    area: str
    value: int


@dataclass(frozen=True, slots=True)
class Explanation:
    metric: str
    total: int
    event_count: int
    events: list[Contribution]

    @property
    def truncated(self) -> bool:
        return len(self.events) < self.event_count


def listed_at_most(limit: int, listed: str, whole: str) -> int:
    """Return how many lines an explanation lists (0: the default); raise QueryError for more
    than one answer may carry, saying what stays the whole figure (`whole`)."""
    if limit > MAX_EXPLAIN_LIMIT:
        raise QueryError(
            f"limit: at most {MAX_EXPLAIN_LIMIT} {listed} in one answer (got {limit}); "
            f"{whole} are the whole figure whatever the limit"
        )
    return limit or DEFAULT_LIMIT


def explain(
    engine: Engine,
    metric: str,
    scope_unit_id: str = "",
    area: str = "",
    lo: Nanos | None = None,
    hi: Nanos | None = None,
    as_of: Nanos | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Explanation:
    """Return the events behind one figure, in log order (the first `limit` of them)."""
    if metric not in m.ALL:
        raise QueryError(f"metric: unknown metric {metric!r}; known: {', '.join(m.ALL)}")
    check_area(area)  # as statistics refuse them
    check_period(lo, hi)
    # Into the valid event times, as statistics sum them: a period beyond them is asked about
    # too (it holds no events, but problems may be open then).
    lo = MIN_NS if lo is None else min(max(lo, MIN_NS), MAX_NS)
    hi = MAX_NS if hi is None else min(max(hi, MIN_NS), MAX_NS)
    limit = listed_at_most(limit, "events", "total and event_count")
    e = s.events_seen.c
    with snapshot(engine) as conn:
        scope = resolve_scope(conn, scope_unit_id)
        if metric == m.PROBLEMS_OPEN:
            base = _open_problems(scope.path, area, hi, as_of)
        else:
            f = s.facts.c
            base = select(f.event_id, f.unit_path, f.area, f.value).where(
                f.metric == metric, f.at >= lo, f.at < hi, subtree_clause(f.unit_path, scope.path)
            )
            if area:
                base = base.where(f.area == area)
            if as_of is not None:
                base = base.where(f.recorded_at <= as_of)
        sub = base.subquery()
        total, count = conn.execute(
            select(func.coalesce(func.sum(sub.c.value), 0), func.count())
        ).one()
        rows = conn.execute(
            select(sub, e.source, e.seq, e.occurred_at, e.recorded_at, e.partition, e.offset)
            .join(s.events_seen, e.event_id == sub.c.event_id)
            .order_by(e.partition, e.offset)
            .limit(limit)
        ).all()
    events = [
        Contribution(
            r.event_id,
            r.source,
            r.seq,
            r.occurred_at,
            r.recorded_at,
            r.partition,
            r.offset,
            r.unit_path.rstrip("/").rsplit("/", 1)[-1],
            r.area,
            int(r.value),
        )
        for r in rows
    ]
    return Explanation(metric, int(total), int(count), events)


def _open_problems(path: str, area: str, hi: Nanos, as_of: Nanos | None):  # type: ignore[no-untyped-def]
    """Select the finding events of the problems open at `hi`, each worth 1."""
    p, u, e = s.problems.c, s.units.c, s.events_seen.c
    rectified = p.rectified_at < hi
    if as_of is not None:
        rectified = and_(rectified, p.rectified_recorded_at <= as_of)
    q = (
        select(
            p.found_event_id.label("event_id"),
            u.path.label("unit_path"),
            p.area,
            func.cast(1, s.facts.c.value.type).label("value"),
        )
        .join(s.units, u.unit_id == p.unit_id)
        .where(
            p.found_at < hi, subtree_clause(u.path, path), or_(p.rectified_at.is_(None), ~rectified)
        )
    )
    if area:
        q = q.where(p.area == area)
    if as_of is not None:
        q = q.join(s.events_seen, e.event_id == p.found_event_id).where(e.recorded_at <= as_of)
    return q
