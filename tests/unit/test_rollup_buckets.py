"""The rollups' bucket starts are kept per hour for the aggregator's hottest loop: events may
name any hour from 2000 to 2100, so what is kept must stay small whatever hours they name."""

from __future__ import annotations

import gc
import tracemalloc

from duhub.readmodel import writer
from duhub.readmodel.writer import HOUR_NS, rollup_rows
from tests.unit.builders import at

PATH = ("420500", "420581", "420581103")


def test_the_bucket_starts_kept_stay_small_whatever_hours_events_name() -> None:
    # They were kept for up to 100,000 hours: 125 MB, more than a running hub's whole memory,
    # held for good once a backfill (or a node) sent events over eleven years of hours.
    start = at("2001-01-01") // HOUR_NS
    writer._BUCKETS.clear()
    gc.collect()
    tracemalloc.start()
    try:
        for h in range(start, start + 30_000, 1_000):
            rollup_rows([(PATH, "visits", "ecology", (h + i) * HOUR_NS, 1) for i in range(1_000)])
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 16_000_000, f"{held / 1e6:.0f} MB kept for 30,000 hours"


def test_rollups_are_the_same_after_the_kept_starts_are_let_go() -> None:
    hours = [at("2022-03-04") // HOUR_NS + i * 997 for i in range(40)]
    rows = [(PATH, "visits", "ecology", h * HOUR_NS + 5, 2) for h in hours]
    writer._BUCKETS.clear()
    first = sorted(rollup_rows(rows))
    for h in range(0, 2 * writer.BUCKET_HOURS, 97):  # past the bound, over and over
        rollup_rows([(PATH, "visits", "ecology", h * HOUR_NS, 1)])
    assert sorted(rollup_rows(rows)) == first
