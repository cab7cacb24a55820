"""Time buckets for rollups and how to cover a half-open period [lo, hi) with them.

Rollups are kept per day and month (UTC), and per hour and year for the city and the counties
(`grains_at`). A period is answered with whole years and months in the middle, whole days (and
hours) at the sides, and the edges left (sub-hour, or sub-day below the counties) from the fact
rows, so the cost of a question depends on the length of its period, never on the number of
events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from duhub.domain.events import Nanos

NS = 1_000_000_000
HOUR, DAY, MONTH, YEAR = 1, 2, 3, 4
GRAINS = (HOUR, DAY, MONTH, YEAR)
GRAIN_NAMES = {HOUR: "hour", DAY: "day", MONTH: "month", YEAR: "year"}
# The bounds of valid event times (ingest refuses others): figures are summed inside them.
MIN_NS = 946_684_800 * NS  # 2000-01-01
MAX_NS = 4_102_444_800 * NS  # 2100-01-01
# The calendar periods are counted in: a protobuf Timestamp's, 0001-01-01 to 9999-12-31.
FIRST_NS = -62_135_596_800 * NS  # 0001-01-01
LAST_NS = 253_402_300_800 * NS  # 10000-01-01, exclusive


def month_start(seconds: int) -> int:
    d = datetime.fromtimestamp(seconds, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def next_month(seconds: int) -> int:
    d = datetime.fromtimestamp(seconds, UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def year_start(seconds: int) -> int:
    d = datetime.fromtimestamp(seconds, UTC)
    return int(datetime(d.year, 1, 1, tzinfo=UTC).timestamp())


def next_year(seconds: int) -> int:
    year = datetime.fromtimestamp(seconds, UTC).year
    return int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())


def bucket_start(grain: int, at: Nanos) -> int:
    """Return the start (epoch seconds) of the bucket of `grain` holding `at`."""
    s = at // NS
    if grain == HOUR:
        return s - s % 3600
    if grain == DAY:
        return s - s % 86400
    if grain == YEAR:
        return year_start(s)
    return month_start(s)


@dataclass(frozen=True, slots=True)
class Segment:
    grain: int
    lo: int  # epoch seconds, inclusive
    hi: int  # epoch seconds, exclusive


@dataclass(frozen=True, slots=True)
class Plan:
    segments: tuple[Segment, ...]
    # Sub-hour edges in nanoseconds, answered from fact rows.
    fine: tuple[tuple[Nanos, Nanos], ...]


def _ceil(s: int, step: int) -> int:
    return -(-s // step) * step


def plan(lo: Nanos, hi: Nanos, grains: tuple[int, ...] = GRAINS) -> Plan:
    """Return how to cover [lo, hi) with buckets of `grains` (a scope's, `grains_at`) plus
    the edges left to fact rows: sub-hour edges, or sub-day ones without hour buckets."""
    if lo >= hi:
        return Plan((), ())
    step = 3600 if HOUR in grains else 86400
    h_lo, h_hi = _ceil(lo, step * NS) // NS, hi // NS // step * step
    if h_lo >= h_hi:
        return Plan((), ((lo, hi),))
    fine = tuple(r for r in ((lo, h_lo * NS), (h_hi * NS, hi)) if r[0] < r[1])
    d_lo, d_hi = _ceil(h_lo, 86400), h_hi // 86400 * 86400
    if d_lo >= d_hi:
        return Plan((Segment(HOUR, h_lo, h_hi),), fine)
    segs = [Segment(HOUR, h_lo, d_lo), Segment(HOUR, d_hi, h_hi)]
    m_lo = d_lo if month_start(d_lo) == d_lo else next_month(d_lo)
    m_hi = month_start(d_hi)
    if m_lo >= m_hi:
        segs.append(Segment(DAY, d_lo, d_hi))
        return Plan(tuple(s for s in segs if s.lo < s.hi), fine)
    segs += [Segment(DAY, d_lo, m_lo), Segment(DAY, m_hi, d_hi)]
    y_lo = m_lo if year_start(m_lo) == m_lo else next_year(m_lo)
    y_hi = year_start(m_hi)
    if YEAR not in grains or y_lo >= y_hi:
        segs.append(Segment(MONTH, m_lo, m_hi))
    else:
        segs += [Segment(MONTH, m_lo, y_lo), Segment(MONTH, y_hi, m_hi), Segment(YEAR, y_lo, y_hi)]
    return Plan(tuple(s for s in segs if s.lo < s.hi), fine)


def grains_at(depth: int) -> tuple[int, ...]:
    """Return the rollup grains kept for scopes at `depth` in the hierarchy (0: the city).

    Hour buckets only for the city and the counties, whom sub-day questions are about:
    below them an hour bucket holds about one event, so it cost a row per event and saved
    nothing over reading that event's fact row. Year buckets for them too: the city by
    county over a year, or over all time (a question without a period), reads one row per
    county, metric, area and year instead of one per month. They cost the writes ~10% more
    rollup rows in small batches (~2% in big ones, by measure); below the counties not
    kept: every township and village would add year rows of its own to the writes.
    """
    return GRAINS if depth < TOP_DEPTHS else (DAY, MONTH)


# The city (depth 0) and the counties (1) keep hour and year buckets.
TOP_DEPTHS = 2


def period_start(kind: str, seconds: int, zone: tzinfo = UTC) -> date:
    """Return the local date (in `zone`) starting the period of `kind` that holds `seconds`."""
    return _period_of(kind, _local_date(seconds, zone))


def _local_date(seconds: int, zone: tzinfo) -> date:
    """Return the date in `zone` at `seconds`: within a zone's offset of the ends of a
    Timestamp it lies before 0001-01-01 or after 9999-12-31, which `date` cannot hold; those
    hours are kept in the first or last date."""
    try:
        return datetime.fromtimestamp(seconds, zone).date()
    except (OverflowError, ValueError):
        return date.min if seconds < 0 else date.max


def _period_of(kind: str, d: date) -> date:
    if kind == "day":
        return d
    if kind == "week":
        return d - timedelta(days=d.weekday())
    if kind == "month":
        return d.replace(day=1)
    if kind == "quarter":
        return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)
    if kind == "year":
        return d.replace(month=1, day=1)
    raise ValueError(f"unknown period {kind!r}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def local_midnight(d: date, zone: tzinfo) -> int:
    """Return the instant (epoch seconds) the day `d` starts in `zone`: the first at which the
    local clock reads its midnight or later. Where a change of offset skips midnight, that is
    the change itself (the day is short); where it repeats it, the first midnight (the day
    before is long). Aware arithmetic: no datetime outside 0001..9999 is ever made."""
    early, late = (
        (datetime(d.year, d.month, d.day, tzinfo=zone, fold=f) - _EPOCH) // _SECOND for f in (0, 1)
    )
    early, late = min(early, late), max(early, late)
    midnight = datetime(d.year, d.month, d.day)
    if early == late or _wall(early, zone) == midnight:
        return early
    # Skipped: the clock jumps over midnight between `early` (before the change, still the day
    # before) and `late`; find the change to the second (offsets change on whole seconds).
    while late - early > 1:
        mid = (early + late) // 2
        if _wall(mid, zone) >= midnight:
            late = mid
        else:
            early = mid
    return late


def _wall(seconds: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(seconds, zone).replace(tzinfo=None)


def _period_after(kind: str, start: date) -> date | None:
    """Return the start of the next period; None when it would lie past 9999-12-31."""
    try:
        if kind == "day":
            return start + timedelta(days=1)
        if kind == "week":
            return start + timedelta(days=7)
        months = {"month": 1, "quarter": 3, "year": 12}[kind]
        m = start.month - 1 + months
        return date(start.year + m // 12, m % 12 + 1, 1)
    except (OverflowError, ValueError):
        return None


MAX_PERIODS = 5_000


def periods(kind: str, lo: Nanos, hi: Nanos, zone: tzinfo = UTC) -> list[tuple[str, Nanos, Nanos]]:
    """Return the periods of `kind` in `zone` meeting [lo, hi), each clipped to it: (key: the
    local date starting it, lo, hi). They follow each other without a gap, from lo to hi. The
    bounds lie in [FIRST_NS, LAST_NS]."""
    out: list[tuple[str, Nanos, Nanos]] = []
    start: date | None = period_start(kind, lo // NS, zone)
    begin = lo
    while start is not None and begin < hi:
        end = _period_after(kind, start)
        end_ns = hi if end is None else min(hi, local_midnight(end, zone) * NS)
        if end_ns > begin:  # lo may lie past the period of its local date (a repeated hour)
            out.append((start.isoformat(), begin, end_ns))
            begin = end_ns
        if len(out) > MAX_PERIODS:
            raise ValueError(f"more than {MAX_PERIODS} periods: choose a coarser group_by")
        start = end
    return out
