"""bench.rollup_variants: every layout it measures holds the figures today's rollups hold,
key by key, so its timings compare the same work."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench import common as c
from bench import rollup_variants as rv
from bench.events import NS, RECORDED_BASE
from duhub.readmodel.writer import rollup_rows
from tests.infra import postgres_url

TOWN = "/420500/420502/420502103/"


def _at(*when: int) -> int:
    return int(datetime(*when, tzinfo=UTC).timestamp()) * NS + 123  # type: ignore[misc]


# Records 0-7, three a batch: keys repeated within a batch and across batches (updates), a
# new pair added to a bucket an earlier batch wrote (c2 merges arrays), every depth, the
# area-less metric, and bucket edges (a year's last second, the span's first).
FACTS: list[rv.Fact] = [
    (metric, at, path, area, value, f"e{i}", RECORDED_BASE + (i + 1) * 1000)
    for i, (metric, at, path, area, value) in enumerate(
        [
            ("visits", _at(2023, 3, 1, 10, 15), TOWN, "vaccination", 1),
            ("visits", _at(2023, 3, 1, 10, 16), TOWN, "vaccination", 1),
            ("problems_found", _at(2023, 3, 1, 11), "/420500/420581/", "ecology", 2),
            ("talk_persons", _at(2024, 12, 31, 23, 59, 59), "/420500/", "", 3),
            ("visits", _at(2023, 3, 1, 10, 40), TOWN + "420502103201/", "vaccination", 1),
            ("problems_rectified", _at(2023, 3, 1, 12), TOWN, "vaccination", 1),
            ("problems_found", _at(2022, 1, 1), "/420500/420502/", "grain", 4),
            ("visits", _at(2023, 3, 1, 10, 15), TOWN, "vaccination", 1),
        ]
    )
]


def test_every_layout_holds_the_figures_of_todays_python_sums(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(c, "PG_ADMIN", postgres_url())
    counted = [(tuple(f[2].strip("/").split("/")), f[0], f[3], f[1], f[4]) for f in FACTS]
    # The SQLite writer's sums (`rollup_rows`), of all the facts at once: the oracle.
    expected = sorted(rollup_rows(counted))
    parts = rv.batches(FACTS, 3)
    assert [len(p) for p in parts] == [3, 3, 2]
    codes = rv.Codes.of(FACTS)
    for name, variant in rv.VARIANTS.items():
        run = rv.fresh_database(variant, parts, codes, 3)
        assert run.rows == len(expected), name
        assert run.digest == rv.figures_digest(expected), name
