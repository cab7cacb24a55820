"""The benchmarks' pure helpers: what a rate counts and over what time, and the percentiles."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pytest

from bench.aggregate import drain
from bench.common import percentile


@dataclass
class Rec:
    value: bytes


class Clock:
    """A clock that moves only when the work below says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_raw_reference_leaves_out_the_first_poll_with_its_time() -> None:
    # Every record costs 1 ms to fetch and decode (in poll) and 1 ms to parse: the steady
    # rate is 500 records/s. The first poll brings 5,000 of 11,350 records before the clock
    # can start: counting them over the time after it made the reference ~1.8x too fast.
    clock = Clock()
    batches = [5000, 5000, 1350]

    def poll() -> list[list[Rec]]:
        n = batches.pop(0) if batches else 0
        clock.now += n * 0.001
        return [[Rec(b"x")] * n] if n else []

    def parse(_: bytes) -> None:
        clock.now += 0.001

    done = drain(poll, parse, 11_350, clock=clock)
    assert done.first_poll == 5000
    assert done.counted == 6350
    assert done.steady_s == pytest.approx(6350 * 0.002)
    assert done.rate == pytest.approx(500)
    assert done.overall_s == pytest.approx(11_350 * 0.002)


def test_drain_times_out_when_records_are_missing() -> None:
    with pytest.raises(TimeoutError, match="read 3 of 5"):
        sent = [3]
        drain(lambda: [[Rec(b"x")] * sent.pop()] if sent else [], lambda v: None, 5, timeout=0.2)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_percentile_is_linear_between_closest_ranks(n: int) -> None:
    xs = [((i * 7919) % 1009) / 7.0 for i in range(n)]
    assert percentile(xs, 0) == min(xs)
    assert percentile(xs, 100) == max(xs)
    assert percentile(xs, 50) == pytest.approx(statistics.median(xs))
    if n > 1:
        cuts = statistics.quantiles(xs, n=100, method="inclusive")
        for q in (1, 50, 90, 99):
            assert percentile(xs, q) == pytest.approx(cuts[q - 1])


def test_baseline_answers_compare_whole_answers() -> None:
    from datetime import datetime
    from decimal import Decimal

    from bench.baseline_pg import _rows

    # PostgreSQL's month keys (timestamps) and sums (Decimal) against duhub's date keys and ints.
    pg = [(datetime(2023, 2, 1), 3, 1, Decimal(2)), (datetime(2023, 1, 1), 5, 0, Decimal(0))]
    duhub = [("2023-01-01", 5, 0, 0), ("2023-02-01", 3, 1, 2), ("2023-03-01", 0, 0, 0)]
    assert _rows(pg) == _rows(duhub)
    assert _rows(pg) != _rows([("2023-01-01", 5, 0, 0), ("2023-02-01", 3, 1, 3)])
    # An empty answer on one side is a difference (the first-question check passed on it).
    assert _rows(pg) != _rows([])
    assert _rows([("g1", 4, 0)]) != _rows([])  # a group with nothing covered still counts
