"""The SQLite writer's rollup rows (`rollup_rows`) are the sums their definition gives: every
scope of a fact's path, in every grain `grains_at` keeps for its depth, in the bucket
`bucket_start` puts the fact's time in, summed per key with the number of facts. The writer
sums them its own way for speed; these hold it to the definition."""

from __future__ import annotations

import random

from duhub.projections.timegrid import NS, bucket_start, grains_at
from duhub.readmodel.writer import CountedRow, rollup_rows
from tests.unit.builders import at

CITY = "420500"
COUNTIES = ("420581", "420582")


def by_definition(counted: list[CountedRow]) -> list[tuple[object, ...]]:
    sums: dict[tuple[object, ...], tuple[int, int]] = {}
    for path, metric, area, t, value in counted:
        for depth, scope in enumerate(path):
            for grain in grains_at(depth):
                key = (scope, grain, metric, area, bucket_start(grain, t))
                v, n = sums.get(key, (0, 0))
                sums[key] = (v + value, n + 1)
    return sorted((*k, v, n) for k, (v, n) in sums.items())


def paths() -> list[tuple[str, ...]]:
    """The city, its counties, two townships each and two villages of each township."""
    out: list[tuple[str, ...]] = [(CITY,)]
    for county in COUNTIES:
        out.append((CITY, county))
        for t in range(2):
            township = f"{county}10{t}"
            out.append((CITY, county, township))
            out += [(CITY, county, township, f"{township}20{v}") for v in range(2)]
    return out


def facts(n: int, seed: int) -> list[CountedRow]:
    """Facts around hour, day, month and year ends (a leap day too), many sharing a bucket."""
    rng = random.Random(seed)
    moments = [at(d) for d in ("2022-12-31T23:59:59", "2024-02-29T00:00:00", "2023-06-30T12:30:00")]
    return [
        (
            rng.choice(paths()),
            rng.choice(("visits", "problems_found", "sanctioned_persons")),
            rng.choice(("", "ecology", "fishing_ban")),
            rng.choice(moments) + rng.randrange(-50, 50) * rng.choice((1, 60, 3600, 86400)) * NS,
            rng.randrange(1, 6),
        )
        for _ in range(n)
    ]


def test_rollup_rows_are_the_sums_of_every_scope_grain_and_bucket() -> None:
    for seed in range(5):
        counted = facts(3_000, seed)
        rows = rollup_rows(counted)
        assert sorted(rows) == by_definition(counted)
        assert len({row[:5] for row in rows}) == len(rows), "one row per key"


def test_rollup_rows_of_single_facts_at_every_depth() -> None:
    t = at("2023-01-01T00:00:00")  # the first instant of an hour, day, month and year
    for path in paths():
        counted: list[CountedRow] = [(path, "visits", "ecology", t, 2)]
        assert sorted(rollup_rows(counted)) == by_definition(counted)
    assert rollup_rows([]) == []
