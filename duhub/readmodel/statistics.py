"""Answer statistics from rollups: cost follows the period asked about, not the event count."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, func, or_, select

from duhub.domain import metrics as m
from duhub.domain.events import Nanos
from duhub.projections.timegrid import MAX_NS, MIN_NS, periods, plan
from duhub.readmodel import schema as s
from duhub.readmodel.units import resolve_scope, subtree_clause

GROUP_PERIODS = ("day", "week", "month", "quarter", "year")


class QueryError(ValueError):
    """A question that cannot be answered as asked; the message names the field."""


class NotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    name: str
    values: dict[str, int]
    # How many events make up each value (for problems_open: the problems open).
    events: dict[str, int]


# Event counts travel beside the sums under this prefix.
N = "#"


def statistics(
    engine: Engine,
    metrics: Sequence[str],
    scope_unit_id: str = "",
    area: str = "",
    lo: Nanos | None = None,
    hi: Nanos | None = None,
    group_by: str = "",
    as_of: Nanos | None = None,
) -> list[Row]:
    """Return the figures for a scope (its whole subtree), area and period [lo, hi)."""
    unknown = [x for x in metrics if x not in m.ALL]
    if not metrics:
        raise QueryError("metrics: name at least one metric")
    if unknown:
        raise QueryError(f"metrics: unknown metric {unknown[0]!r}; known: {', '.join(m.ALL)}")
    if group_by and group_by != "unit" and group_by not in GROUP_PERIODS:
        raise QueryError(f"group_by: must be unit or one of {', '.join(GROUP_PERIODS)}")
    lo = MIN_NS if lo is None else max(lo, MIN_NS)
    hi = MAX_NS if hi is None else min(hi, MAX_NS)
    if lo >= hi:
        raise QueryError("to: must be after from")
    wanted = _stored_metrics(metrics)
    with engine.connect() as conn:
        scope = resolve_scope(conn, scope_unit_id)
        if group_by == "unit":
            q = (
                select(s.units.c.unit_id, s.units.c.name, s.units.c.path)
                .where(s.units.c.parent_id == scope.unit_id)
                .order_by(s.units.c.unit_id)
            )
            if as_of is not None:
                q = q.where(s.units.c.recorded_at <= as_of)
            children = conn.execute(q).all()
            keys = [(c.unit_id, c.name, c.path) for c in children]
            sums = _sums(conn, keys, wanted, area, [(MIN_NS, lo), (lo, hi)], as_of)
            return [Row(k, n, *_values(metrics, sums[k][1], sums[k][0])) for k, n, _ in keys]
        if group_by:
            if lo == MIN_NS or hi == MAX_NS:
                raise QueryError("from: from and to are required when grouping by period")
            spans = periods(group_by, lo, hi)
            ranges = [(MIN_NS, lo)] + [(a, b) for _, a, b in spans]
            scope_key = [(scope.unit_id, scope.name, scope.path)]
            per = _sums(conn, scope_key, wanted, area, ranges, as_of)[scope.unit_id]
            rows, before = [], per[0]
            for i, (key, _, _) in enumerate(spans, start=1):
                rows.append(Row(key, "", *_values(metrics, per[i], before)))
                before = _add(before, per[i])
            return rows
        scope_key = [(scope.unit_id, scope.name, scope.path)]
        per = _sums(conn, scope_key, wanted, area, [(MIN_NS, lo), (lo, hi)], as_of)[scope.unit_id]
        return [Row("", "", *_values(metrics, per[1], per[0]))]


def _stored_metrics(metrics: Sequence[str]) -> list[str]:
    out = {x for x in metrics if x != m.PROBLEMS_OPEN}
    if m.PROBLEMS_OPEN in metrics:
        out |= {m.PROBLEMS_FOUND, m.PROBLEMS_RECTIFIED}
    return sorted(out)


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def _values(
    metrics: Sequence[str], period: dict[str, int], before: dict[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """Return the asked metrics and their event counts; problems_open is found minus
    rectified up to the period end."""
    values, events = {}, {}
    upto = _add(before, period)
    for name in metrics:
        if name == m.PROBLEMS_OPEN:
            found, fixed = m.PROBLEMS_FOUND, m.PROBLEMS_RECTIFIED
            values[name] = upto.get(found, 0) - upto.get(fixed, 0)
            events[name] = upto.get(N + found, 0) - upto.get(N + fixed, 0)
        else:
            values[name] = period.get(name, 0)
            events[name] = period.get(N + name, 0)
    return values, events


def _sums(
    conn: Connection,
    scopes: Sequence[tuple[str, str, str]],
    metrics: Sequence[str],
    area: str,
    ranges: Sequence[tuple[Nanos, Nanos]],
    as_of: Nanos | None,
) -> dict[str, list[dict[str, int]]]:
    """Return, per scope id, per range (disjoint, ascending), the sum of each metric."""
    out: dict[str, list[dict[str, int]]] = {
        sid: [defaultdict(int) for _ in ranges] for sid, _, _ in scopes
    }
    if not scopes:
        return out
    scope_ids = [sid for sid, _, _ in scopes]
    by_grain: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    fine: list[tuple[Nanos, Nanos, int]] = []
    for i, (lo, hi) in enumerate(ranges):
        p = plan(lo, hi)
        for seg in p.segments:
            by_grain[seg.grain].append((seg.lo, seg.hi, i))
        fine += [(a, b, i) for a, b in p.fine]
    r = s.rollups.c
    for grain, segs in by_grain.items():
        segs.sort()
        starts = [x[0] for x in segs]
        q = (
            select(r.scope_id, r.metric, r.bucket, func.sum(r.value), func.sum(r.events))
            .where(
                r.scope_id.in_(scope_ids),
                r.grain == grain,
                r.metric.in_(metrics),
                r.bucket >= segs[0][0],
                r.bucket < max(x[1] for x in segs),
            )
            .group_by(r.scope_id, r.metric, r.bucket)
        )
        if area:
            q = q.where(r.area == area)
        for scope_id, metric, bucket, value, events in conn.execute(q):
            j = bisect.bisect_right(starts, bucket) - 1
            if j >= 0 and bucket < segs[j][1]:
                sums = out[scope_id][segs[j][2]]
                sums[metric] += int(value)
                sums[N + metric] += int(events)
    f = s.facts.c
    paths = [(sid, path) for sid, _, path in scopes]
    if fine:
        windows = or_(*[and_(f.at >= a, f.at < b) for a, b, _ in fine])
        q = select(f.unit_path, f.metric, f.at, f.value).where(
            f.metric.in_(metrics), windows, _any_subtree(paths)
        )
        if area:
            q = q.where(f.area == area)
        for path, metric, at, value in conn.execute(q):
            i = next(i for a, b, i in fine if a <= at < b)
            for sid in _owners(paths, path):
                out[sid][i][metric] += value
                out[sid][i][N + metric] += 1
    if as_of is not None:
        # What was recorded after the moment asked about is taken back out.
        q = select(f.unit_path, f.metric, f.at, f.value).where(
            f.recorded_at > as_of, f.metric.in_(metrics), _any_subtree(paths)
        )
        if area:
            q = q.where(f.area == area)
        bounds = [lo for lo, _ in ranges]
        for path, metric, at, value in conn.execute(q):
            i = bisect.bisect_right(bounds, at) - 1
            if i >= 0 and at < ranges[i][1]:
                for sid in _owners(paths, path):
                    out[sid][i][metric] -= value
                    out[sid][i][N + metric] -= 1
    return out


def _any_subtree(paths: Sequence[tuple[str, str]]):  # type: ignore[no-untyped-def]
    return or_(*[subtree_clause(s.facts.c.unit_path, path) for _, path in paths])


def _owners(paths: Sequence[tuple[str, str]], path: str) -> list[str]:
    return [sid for sid, p in paths if path.startswith(p)]
