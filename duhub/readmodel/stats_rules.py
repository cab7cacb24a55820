"""The rules a statistics request keeps whichever path answers it: the rollups' (`statistics`)
or a campaign's groups' (`group_figures`), and `lineage.explain` for the figure it explains.
One copy, so that the same question asked wrongly is refused in the same words on each path."""

from __future__ import annotations

from collections.abc import Sequence

from duhub.domain import metrics as m
from duhub.domain.events import AREA_RULE, Nanos, is_area


class QueryError(ValueError):
    """A question that cannot be answered as asked; the message names the field."""


def check_statistics(metrics: Sequence[str], area: str, lo: Nanos | None, hi: Nanos | None) -> None:
    """Refuse (QueryError, naming the field) a statistics request that no path could answer:
    no metric, an unknown one, an area no event could carry, a period ending before it starts.
    What only one path refuses (a grouping, a metric no campaign group makes) it checks after."""
    if not metrics:
        raise QueryError("metrics: name at least one metric")
    unknown = [x for x in metrics if x not in m.ALL]
    if unknown:
        raise QueryError(f"metrics: unknown metric {unknown[0]!r}; known: {', '.join(m.ALL)}")
    check_area(area)
    check_period(lo, hi)


def check_area(area: str) -> None:
    """Refuse an area no event could carry: a question asked wrongly, not one about nothing."""
    if area and not is_area(area):
        raise QueryError(f"area: {AREA_RULE}")


def check_period(lo: Nanos | None, hi: Nanos | None) -> None:
    """Refuse a period [lo, hi) that is empty or ends before it starts (None: unbounded)."""
    if lo is not None and hi is not None and lo >= hi:
        raise QueryError("to: must be after from")
