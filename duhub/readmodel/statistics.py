"""Answer statistics from rollups: cost follows the period asked about, not the event count."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo

from sqlalchemy import Connection, Engine

from duhub.domain import metrics as m
from duhub.domain.events import Nanos
from duhub.projections.previous import previous_period
from duhub.projections.timegrid import (
    DAY,
    FIRST_NS,
    HOUR,
    LAST_NS,
    MAX_NS,
    MIN_NS,
    MONTH,
    YEAR,
    grains_at,
    periods,
    plan,
)
from duhub.readmodel import schema as s
from duhub.readmodel.engine import dbapi_cursor, driver_sql, plain_rows, snapshot
from duhub.readmodel.stats_rules import QueryError, check_statistics
from duhub.readmodel.units import resolve_scope

GROUP_PERIODS = ("day", "week", "month", "quarter", "year")
# The most branches one statement unites: SQLite refuses a compound SELECT of more than 500.
MAX_BRANCHES = 400


class NotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    name: str
    values: dict[str, int]
    # How many events make up each value (for problems_open: the problems open).
    events: dict[str, int]
    # Asked with compare_previous: the same of the period before (`previous_period`).
    previous_values: dict[str, int] | None = None
    previous_events: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    rows: list[Row]
    # Grouped by unit: the scope's own events, in no child's row (None otherwise).
    own: Row | None = None
    # Asked with compare_previous: the period before, [start, end), each row's previous_*.
    previous: tuple[Nanos, Nanos] | None = None


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
    time_zone: tzinfo = UTC,
) -> list[Row]:
    """Return the figures for a scope (its whole subtree), area and period [lo, hi); by
    period, periods of `time_zone`."""
    return figures(engine, metrics, scope_unit_id, area, lo, hi, group_by, as_of, time_zone).rows


def figures(
    engine: Engine,
    metrics: Sequence[str],
    scope_unit_id: str = "",
    area: str = "",
    lo: Nanos | None = None,
    hi: Nanos | None = None,
    group_by: str = "",
    as_of: Nanos | None = None,
    time_zone: tzinfo = UTC,
    compare_previous: bool = False,
) -> Figures:
    """Return the rows `statistics` does and, grouped by unit, the scope's own events read
    in the same snapshot (told apart in two answers, a change between them was counted as
    the scope's own). With `compare_previous`, each row also holds the figures of the period
    before (`previous_period`), read in the same statements: both periods of one state."""
    check_statistics(metrics, area, lo, hi)  # the rules a campaign's figures keep too
    if group_by and group_by != "unit" and group_by not in GROUP_PERIODS:
        raise QueryError(f"group_by: must be unit or one of {', '.join(GROUP_PERIODS)}")
    if group_by and group_by != "unit" and (lo is None or hi is None):
        # Asked of the bounds as given, not as clamped: 2000-01-01 itself starts a period.
        missing = "from" if lo is None else "to"
        raise QueryError(f"{missing}: from and to are required when grouping by period")
    previous = _previous(lo, hi, group_by, time_zone) if compare_previous else None
    lo = MIN_NS if lo is None else lo
    hi = MAX_NS if hi is None else hi
    if group_by in GROUP_PERIODS:
        for name, t in (("from", lo), ("to", hi)):
            if not FIRST_NS <= t <= LAST_NS:
                raise QueryError(f"{name}: must lie between 0001-01-01 and 9999-12-31")
    wanted = _stored_metrics(metrics)
    # Only problems_open needs what came before the period; otherwise that range is empty.
    start = _clip(lo if previous is None else previous[0])
    first = (MIN_NS if m.PROBLEMS_OPEN in metrics else start, start)
    # The ranges before the period asked: [first] or [first, the period before].
    head = [first] if previous is None else [first, (start, _clip(lo))]
    with snapshot(engine) as conn:
        scope = resolve_scope(conn, scope_unit_id)
        scope_key = [(scope.unit_id, scope.name, scope.path)]
        if group_by == "unit":
            sql = "SELECT unit_id, name, path FROM units WHERE parent_id = ?"
            params: list[object] = [scope.unit_id]
            if as_of is not None:
                sql += " AND recorded_at <= ?"
                params.append(as_of)
            keys = plain_rows(conn, sql + " ORDER BY unit_id", params)
            ranges = [*head, (_clip(lo), _clip(hi))]
            sums = _sums(conn, keys, wanted, area, ranges, as_of, scope.unit_id)
            rows = [_row(k, n, metrics, sums[k]) for k, n, _ in keys]
            whole = _sums(conn, scope_key, wanted, area, ranges, as_of)[scope.unit_id]
            # What the children's rows leave of the whole subtree is the scope's own.
            own = [_less(whole[i], [sums[k][i] for k, _, _ in keys]) for i in range(len(ranges))]
            return Figures(rows, _row(scope.unit_id, scope.name, metrics, own), previous)
        if group_by:
            try:
                spans = periods(group_by, lo, hi, time_zone)
            except ValueError as e:  # too many periods: a question asked wrongly, not a fault
                raise QueryError(f"group_by: {e}") from None
            # Every period of [from, to) is listed; those outside the valid event times are
            # summed over an empty range.
            ranges = [first] + [(_clip(a), _clip(b)) for _, a, b in spans]
            per = _sums(conn, scope_key, wanted, area, ranges, as_of)[scope.unit_id]
            rows, before = [], per[0]
            for i, (key, _, _) in enumerate(spans, start=1):
                rows.append(Row(key, "", *_values(metrics, per[i], before)))
                before = _add(before, per[i])
            return Figures(rows)
        ranges = [*head, (_clip(lo), _clip(hi))]
        per = _sums(conn, scope_key, wanted, area, ranges, as_of)[scope.unit_id]
        return Figures([_row("", "", metrics, per)], previous=previous)


def _previous(
    lo: Nanos | None, hi: Nanos | None, group_by: str, zone: tzinfo
) -> tuple[Nanos, Nanos]:
    """Return the period before [lo, hi), or refuse a question it makes no sense of."""
    if group_by and group_by != "unit":
        raise QueryError(
            f"compare_previous: not with group_by {group_by} (its periods follow each other "
            "in the answer already; compare a period with the one before, by unit or not "
            "grouped)"
        )
    if lo is None or hi is None:
        missing = "from" if lo is None else "to"
        raise QueryError(
            f"{missing}: from and to are required with compare_previous (the period before "
            "is as long as the one asked)"
        )
    try:
        return previous_period(lo, hi, zone)
    except ValueError as e:
        raise QueryError(f"compare_previous: {e}") from None


def _row(key: str, name: str, metrics: Sequence[str], per: Sequence[dict[str, int]]) -> Row:
    """A row from its sums per range: [before, period] or [before, period before, period]."""
    if len(per) == 2:
        return Row(key, name, *_values(metrics, per[1], per[0]))
    values, events = _values(metrics, per[2], _add(per[0], per[1]))
    return Row(key, name, values, events, *_values(metrics, per[1], per[0]))


def _clip(at: Nanos) -> Nanos:
    """Return a bound moved into the valid event times (ingest refuses events outside them):
    a range beyond them becomes an empty one at their edge, in its place among the others."""
    return min(max(at, MIN_NS), MAX_NS)


def _stored_metrics(metrics: Sequence[str]) -> list[str]:
    out = {x for x in metrics if x != m.PROBLEMS_OPEN}
    if m.PROBLEMS_OPEN in metrics:
        out |= {m.PROBLEMS_FOUND, m.PROBLEMS_RECTIFIED}
    return sorted(out)


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def _less(whole: dict[str, int], parts: Iterable[dict[str, int]]) -> dict[str, int]:
    out = dict(whole)
    for part in parts:
        for k, v in part.items():
            out[k] = out.get(k, 0) - v
    return out


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
    parent: str = "",
) -> dict[str, list[dict[str, int]]]:
    """Return, per scope id, per range (disjoint, ascending), the sum of each metric. The
    scopes are one unit or the children of `parent`."""
    out: dict[str, list[dict[str, int]]] = {
        sid: [defaultdict(int) for _ in ranges] for sid, _, _ in scopes
    }
    if not scopes or not ranges:
        return out
    paths = [(sid, path) for sid, _, path in scopes]
    if as_of is not None and _nearer_the_start(conn, as_of):
        # Fewer facts were recorded before the moment than after it: sum those directly
        # instead of taking the later ones out of the rollups (the same figures: the rollups
        # are the sums of the facts).
        _count_facts(out, _recorded(conn, "<=", as_of, paths, metrics, area), ranges, paths, 1)
        return out
    segments: list[tuple[int, int, int, int]] = []
    fine: list[tuple[Nanos, Nanos, int]] = []
    # The scopes of one call share a depth; below the counties there are no hour or year
    # buckets.
    depth = scopes[0][2].count("/") - 2
    grains = grains_at(depth)
    for i, (lo, hi) in enumerate(ranges):
        p = plan(lo, hi, grains)
        segments += [(seg.grain, seg.lo, seg.hi, i) for seg in p.segments]
        fine += [(a, b, i) for a, b in p.fine]
    runs = _runs(segments)
    # A statement per MAX_BRANCHES runs or windows (one snapshot): periods in a zone off UTC
    # split every period into runs of their own (a Beijing week is 16 hours, 6 days and 8
    # hours in UTC buckets), and SQLite takes at most 500 in one compound SELECT.
    for first in range(0, len(runs), MAX_BRANCHES):
        chunk = runs[first : first + MAX_BRANCHES]
        sql, params = _rollup_sql(
            chunk, [sid for sid, _, _ in scopes], metrics, area, parent, depth
        )
        steps = [_even_step(grain, segs) for grain, _, segs in chunk]
        for k, scope_id, metric, bucket, value, events in plain_rows(conn, sql, params):
            starts, segs = chunk[k][1], chunk[k][2]
            # Summed by segment in SQL (`bucket` is its index there), else by bucket.
            j = bucket if steps[k] else bisect.bisect_right(starts, bucket) - 1
            sums = out[scope_id][segs[j][2]]
            sums[metric] += int(value)
            sums[N + metric] += int(events)
    if fine:
        owner = _owner(paths)
        # Found by bisection: by day in a zone off UTC every period is fine below the
        # counties, and a scan of hundreds of ranges per fact was quadratic.
        fine.sort()
        starts = [a for a, _, _ in fine]
        for sql, params in _facts_sql(fine, paths, metrics, area):
            for path, metric, at, value in plain_rows(conn, sql, params):
                sid = owner(path)
                if sid is not None:
                    i = fine[bisect.bisect_right(starts, at) - 1][2]
                    out[sid][i][metric] += value
                    out[sid][i][N + metric] += 1
    if as_of is not None:
        # What was recorded after the moment asked about is taken back out.
        _count_facts(out, _recorded(conn, ">", as_of, paths, metrics, area), ranges, paths, -1)
    return out


def _count_facts(
    out: dict[str, list[dict[str, int]]],
    facts: Iterable[tuple[str, str, Nanos, int]],
    ranges: Sequence[tuple[Nanos, Nanos]],
    paths: Sequence[tuple[str, str]],
    sign: int,
) -> None:
    """Add (sign 1) or take out (-1) fact rows into the sums of the ranges they fall in."""
    bounds = [lo for lo, _ in ranges]
    owner = _owner(paths)
    for path, metric, at, value in facts:
        i = bisect.bisect_right(bounds, at) - 1
        sid = owner(path)
        if i >= 0 and at < ranges[i][1] and sid is not None:
            out[sid][i][metric] += sign * value
            out[sid][i][N + metric] += sign


def _nearer_the_start(conn: Connection, as_of: Nanos) -> bool:
    """Return whether `as_of` lies nearer the first fact's record time than the last's: then
    fewer facts are likely recorded before it (two lookups on the record-time index)."""
    # One subquery each: SQLite reads a bare min() or max() from the index, both in one
    # SELECT from the whole table (0.6-0.9 s at 10M events).
    sql = "SELECT (SELECT min(recorded_at) FROM facts), (SELECT max(recorded_at) FROM facts)"
    ((first, last),) = plain_rows(conn, sql)
    return first is not None and as_of - first < last - as_of


# A run: adjacent segments of one grain, read with one index range scan. (grain, segment
# starts, segments as (lo, hi, range index)).
Run = tuple[int, list[int], list[tuple[int, int, int]]]


def _runs(segments: Sequence[tuple[int, int, int, int]]) -> list[Run]:
    runs: list[Run] = []
    for grain, lo, hi, i in sorted(segments):
        if runs and runs[-1][0] == grain and runs[-1][2][-1][1] == lo:
            runs[-1][1].append(lo)
            runs[-1][2].append((lo, hi, i))
        else:
            runs.append((grain, [lo], [(lo, hi, i)]))
    return runs


# The length of a bucket of each grain kept in seconds (months and years vary).
BUCKET_SECONDS = {HOUR: 3600, DAY: 86400}


def _even_step(grain: int, segs: Sequence[tuple[int, int, int]]) -> int | None:
    """Return the length of a run's segments when they are all as long, and longer than a
    bucket (a Beijing day is 24 hour buckets at the city), else None: such a run is summed
    per segment in SQL, (bucket - start) / length, not per bucket in Python (8,760 rows a
    metric for a year of Beijing days instead of 365)."""
    step = segs[0][1] - segs[0][0]
    if len(segs) < 2 or step <= BUCKET_SECONDS.get(grain, step):
        return None
    return step if all(hi - lo == step for lo, hi, _ in segs) else None


def _rollup_sql(
    runs: Sequence[Run],
    scope_ids: Sequence[str],
    metrics: Sequence[str],
    area: str,
    parent: str,
    depth: int,
) -> tuple[str, list[object]]:
    """Return one statement summing every run in SQL (one snapshot, one round trip): per
    scope and metric, per bucket only where a run has more than one segment to tell apart.
    Placeholders are `?` (`plain_rows`): SQLAlchemy parsing the named ones of a text
    statement on every answer cost more than SQLite's planning of it."""
    params: list[object] = []

    def marks(values: Sequence[object]) -> str:
        params.extend(values)
        return ", ".join("?" * len(values))

    if area:
        head = ""
    else:
        # area sits before bucket in the primary key: naming the areas (those of the scope's
        # coarsest rows, or of the parent of the scopes: few) makes every bucket range an
        # index range instead of a scan of all time. Every month row has its year row where
        # years are kept, so both hold the same areas.
        if parent:
            params.append(parent)
            of, depth = "scope_id = ?", depth - 1
        else:
            of = f"scope_id IN ({marks(scope_ids)})"
        coarsest = YEAR if YEAR in grains_at(depth) else MONTH
        head = (
            f"WITH a AS (SELECT DISTINCT area FROM rollups "
            f"WHERE {of} AND grain = {coarsest} AND metric IN ({marks(metrics)})) "
        )
    area_is = "area = ?" if area else "area IN (SELECT area FROM a)"
    parts = []
    for k, (grain, _starts, segs) in enumerate(runs):
        bucket = "bucket" if len(segs) > 1 else "MIN(bucket)"
        if step := _even_step(grain, segs):
            bucket = f"(bucket - {int(segs[0][0])}) / {int(step)}"  # integers of ours
        # Positional: each branch takes its own copy of the scopes, metrics and area.
        scopes, names = marks(scope_ids), marks(metrics)
        params += [area] if area else []
        params += [segs[0][0], segs[-1][1]]
        parts.append(
            f"SELECT {k}, scope_id, metric, {bucket}, SUM(value), SUM(events) FROM rollups "
            f"WHERE scope_id IN ({scopes}) AND grain = {grain} AND metric IN ({names}) "
            f"AND {area_is} AND bucket >= ? AND bucket < ? "
            f"GROUP BY scope_id, metric{f', {bucket}' if len(segs) > 1 else ''}"
        )
    return head + " UNION ALL ".join(parts), params


def _facts_where(
    paths: Sequence[tuple[str, str]], metrics: Sequence[str], area: str
) -> tuple[str, list[object]]:
    """Return the condition (and its parameters) on fact rows of the metrics, in the span of
    the scopes' subtrees, in the area when one is asked. Siblings' subtrees lie side by side,
    so one range holds them all (and those of siblings left out, which `_owner` drops): a
    condition per scope made an expression as deep as the children, and SQLite refuses one
    over 1,000 deep (a country's city groups 2,800 counties)."""
    ranges = [s.subtree_range(path) for _, path in paths]
    where = f"metric IN ({', '.join('?' * len(metrics))}) AND unit_path >= ? AND unit_path < ?"
    params: list[object] = [*metrics, min(lo for lo, _ in ranges), max(hi for _, hi in ranges)]
    if area:
        where += " AND area = ?"
        params.append(area)
    return where, params


def _facts_sql(
    fine: Sequence[tuple[Nanos, Nanos, int]],
    paths: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    area: str,
) -> list[tuple[str, list[object]]]:
    """Return the statements reading the fact rows of the edge windows: one branch per
    window, so each is an index range on (metric, at); ORed windows make SQLite scan every
    fact of the metrics. At most MAX_BRANCHES windows a statement."""
    where, where_params = _facts_where(paths, metrics, area)
    windows: list[tuple[Nanos, Nanos]] = []
    for a, b, _ in sorted(fine):
        if windows and windows[-1][1] == a:
            windows[-1] = (windows[-1][0], b)
        else:
            windows.append((a, b))
    branch = f"SELECT unit_path, metric, at, value FROM facts WHERE {where} AND at >= ? AND at < ?"
    statements = []
    for first in range(0, len(windows), MAX_BRANCHES):
        chunk = windows[first : first + MAX_BRANCHES]
        params = [x for a, b in chunk for x in (*where_params, a, b)]
        statements.append((" UNION ALL ".join([branch] * len(chunk)), params))
    return statements


def _recorded(
    conn: Connection,
    op: str,
    as_of: Nanos,
    paths: Sequence[tuple[str, str]],
    metrics: Sequence[str],
    area: str,
) -> Iterator[tuple[str, str, Nanos, int]]:
    """Yield the fact rows of the scopes recorded after `as_of` (op ">") or up to it ("<="),
    read from the index on record time: the cost follows the facts on that side.

    SQLite keeps no statistics on its own (no ANALYZE) and took the (metric, at) index for
    this, reading every fact of the metrics: 1.8 s at 10M events for 11k facts recorded
    after. PostgreSQL's planner has its statistics."""
    assert op in (">", "<=")
    where, params = _facts_where(paths, metrics, area)
    where = f"recorded_at {op} ? AND {where}"
    params = [as_of, *params]
    table = "facts"
    if conn.dialect.name == "sqlite":
        table += f" INDEXED BY {s.RECORDED_AT_INDEX}"
    sql = f"SELECT unit_path, metric, at, value FROM {table} WHERE {where}"
    cursor = dbapi_cursor(conn)
    try:
        cursor.execute(driver_sql(conn, sql), tuple(params))
        yield from cursor  # rows as they come: an old moment on a long log is many
    finally:
        cursor.close()


def _owner(paths: Sequence[tuple[str, str]]) -> Callable[[str], str | None]:
    """Return a function from a fact's unit path to the scope holding it (None: none of
    them). The scopes share a depth, so a path's prefix of that depth names its scope: a
    lookup per fact, not a comparison with every scope (thousands of children)."""
    by_path = {p: sid for sid, p in paths}
    slashes = paths[0][1].count("/") if paths else 0

    def owner(path: str) -> str | None:
        end = -1
        for _ in range(slashes):
            end = path.find("/", end + 1)
            if end < 0:
                return None
        return by_path.get(path[: end + 1])

    return owner
