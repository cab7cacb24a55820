"""Answers worked out by hand against the contract's Metrics and Query semantics, at the
edges: the bounds of valid event times, and as-of moments between two covering visits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from duhub.readmodel.statistics import QueryError, statistics
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import (
    YIDU,
    Pipeline,
    at,
    hierarchy,
    kinds,
    talk,
)


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = Pipeline.open()
    p.clock.now = at("2023-02-01")
    assert set(kinds(p.publish(hierarchy(), allow_reference=True))) == {"accepted"}
    yield p
    p.close()


def publish(p: Pipeline, event: pb.Event, seq: int, now: int) -> None:
    event.event_id, event.seq = f"e{seq}", seq
    p.clock.now = now
    assert kinds(p.publish([event])) == ["accepted"]


def test_grouping_by_period_from_the_first_valid_day(hub: Pipeline) -> None:
    """2000-01-01 is a valid event time and starts a month: a period question from it is
    answered, not refused as if `from` were missing."""
    publish(hub, talk(YIDU, 3, occurred_at=at("2000-01-01")), 1, at("2023-02-01T00:00:01"))
    hub.tailer.catch_up()
    rows = statistics(
        hub.engine, ["talk_persons"], "", "", at("2000-01-01"), at("2000-03-01"), "month"
    )
    assert [(r.key, r.values) for r in rows] == [
        ("2000-01-01", {"talk_persons": 3}),
        ("2000-02-01", {"talk_persons": 0}),
    ]
    with pytest.raises(QueryError, match="^from: "):
        statistics(hub.engine, ["talk_persons"], "", "", None, at("2000-03-01"), "month")
    with pytest.raises(QueryError, match="^to: "):
        statistics(hub.engine, ["talk_persons"], "", "", at("2000-01-01"), None, "month")
