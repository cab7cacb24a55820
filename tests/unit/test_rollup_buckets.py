"""The rollups' month and year starts are kept per day and month for the aggregator's hottest
loop: events may name any day from 2000 to 2100, so what is kept must stay small whatever
days they name (hour buckets were kept before, and once took 125 MB)."""

from __future__ import annotations

import gc
import tracemalloc

from duhub.readmodel import writer
from duhub.readmodel.writer import HOUR_NS, rollup_rows
from tests.unit.builders import at

DAY_NS = 24 * HOUR_NS

PATH = ("420500", "420581", "420581103")


def test_the_bucket_starts_kept_stay_small_whatever_days_events_name() -> None:
    # Hour buckets were kept for up to 100,000 hours: 125 MB, more than a running hub's whole
    # memory, held for good once a backfill (or a node) sent events over eleven years of hours.
    start = at("2000-01-01") // DAY_NS
    writer._MONTH_OF_DAY.clear()
    gc.collect()
    tracemalloc.start()
    try:
        for d in range(start, start + 2 * writer.BUCKET_DAYS, 1_000):  # a century and more
            rollup_rows([(PATH, "visits", "ecology", (d + i) * DAY_NS, 1) for i in range(1_000)])
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 16_000_000, f"{held / 1e6:.0f} MB kept for {2 * writer.BUCKET_DAYS:,} days"


def test_rollups_are_the_same_after_the_kept_starts_are_let_go() -> None:
    hours = [at("2022-03-04") // HOUR_NS + i * 997 for i in range(40)]
    rows = [(PATH, "visits", "ecology", h * HOUR_NS + 5, 2) for h in hours]
    writer._MONTH_OF_DAY.clear()
    first = sorted(rollup_rows(rows))
    for d in range(0, 2 * writer.BUCKET_DAYS, 97):  # past the bound, over and over
        rollup_rows([(PATH, "visits", "ecology", d * DAY_NS, 1)])
    assert sorted(rollup_rows(rows)) == first
