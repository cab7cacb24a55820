"""The period before a period: what `compare_previous` sets a period's figures against.

A weekly report compares a week with the week before, a monthly one March with February
(29 days, not the 31 days before April 1st). So, in the zone the question is asked in:

- both ends the first of a month at local midnight: as many calendar months, just before;
- else both ends at a local midnight: as many local days, just before (a week across a change
  of clocks stays Monday to Monday);
- else the same length of time, just before.
"""

from __future__ import annotations

from datetime import date, timedelta, tzinfo

from duhub.domain.events import Nanos
from duhub.projections.timegrid import FIRST_NS, NS, _local_date, local_midnight


def previous_period(lo: Nanos, hi: Nanos, zone: tzinfo) -> tuple[Nanos, Nanos]:
    """Return [start, lo): the period just before [lo, hi), by the rules above. Raise
    ValueError when it would start before 0001-01-01."""
    if not lo < hi:
        raise ValueError("the period must end after it starts")
    start = _calendar_start(lo, hi, zone)
    if start is None:
        start = lo - (hi - lo)
    if start < FIRST_NS:
        raise ValueError("the period before would start before 0001-01-01")
    return start, lo


def _midnight_date(at: Nanos, zone: tzinfo) -> date | None:
    """Return the local date `at` starts, when it is a local midnight (None otherwise)."""
    if at % NS:
        return None
    d = _local_date(at // NS, zone)
    try:
        return d if local_midnight(d, zone) * NS == at else None
    except (OverflowError, ValueError):
        return None


def _calendar_start(lo: Nanos, hi: Nanos, zone: tzinfo) -> Nanos | None:
    """Return the start by calendar months or local days (None: the ends are no midnights)."""
    a, b = _midnight_date(lo, zone), _midnight_date(hi, zone)
    if a is None or b is None:
        return None
    try:
        if a.day == 1 and b.day == 1:
            months = (b.year - a.year) * 12 + b.month - a.month
            m = a.year * 12 + a.month - 1 - months
            start = date(m // 12, m % 12 + 1, 1)
        else:
            start = a - timedelta(days=(b - a).days)
        return local_midnight(start, zone) * NS
    except (OverflowError, ValueError):
        return FIRST_NS - 1  # before every date: refused by the caller
