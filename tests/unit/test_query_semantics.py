"""Answers worked out by hand against the contract's Metrics and Query semantics, at the
edges: the bounds of valid event times, and as-of moments between two covering visits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from duhub.readmodel.coverage import coverage
from duhub.readmodel.statistics import QueryError, statistics
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import (
    DANG_T1,
    DAY,
    YIDU,
    YIDU_T1,
    Pipeline,
    at,
    campaign,
    group,
    hierarchy,
    kinds,
    talk,
    visit,
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


def test_as_of_full_at_comes_from_visits_recorded_by_then(hub: Pipeline) -> None:
    """When a group became full, asked as of a moment, is told from the visits recorded at or
    before it: a visit with an earlier event time recorded later was not known then."""
    s = at("2022-11-01")
    t0 = at("2023-02-01T01:00:00")
    publish(
        hub,
        campaign(
            "c", [group("g", pb.TIER_CITY, YIDU_T1, DANG_T1)], starts_at=s, ends_at=s + 30 * DAY
        ),
        1,
        t0,
    )
    publish(hub, visit(YIDU_T1, "c", "g", occurred_at=s + DAY), 2, t0 + 1)
    publish(hub, visit(DANG_T1, "c", "g", occurred_at=s + 10 * DAY), 3, t0 + 2)
    # Recorded later, happened earlier: from now on the group was full since day 2.
    publish(hub, visit(DANG_T1, "c", "g", occurred_at=s + 2 * DAY), 4, t0 + 3)
    hub.tailer.catch_up()

    (now,) = coverage(hub.engine, "c").groups
    assert (now.covered, now.full_at) == (2, s + 2 * DAY)
    (then,) = coverage(hub.engine, "c", as_of=t0 + 2).groups
    assert (then.covered, then.full) == (2, True)
    # At t0 + 2 the hub knew only the day-11 visit to DANG_T1: full since day 11.
    assert then.full_at == s + 10 * DAY
    (county,) = [c for c in coverage(hub.engine, "c", as_of=t0 + 2).counties if c.key != YIDU]
    assert county.full_at == s + 10 * DAY


def test_an_area_no_event_could_carry_is_refused_naming_it(hub: Pipeline) -> None:
    """An area is a short lowercase key: asking for "BAD AREA" is a question asked wrongly
    (ingest refuses such an area), not one answered with zeros; an area no event used yet is
    answered, with zeros."""
    publish(hub, talk(YIDU, 3, area="ecology"), 1, at("2023-02-01T00:00:01"))
    hub.tailer.catch_up()
    for bad in ("BAD", "bad area", "x" * 33, "_ecology", "ecology\n"):
        with pytest.raises(QueryError, match="^area: must be a short lowercase key"):
            statistics(hub.engine, ["talk_persons"], "", bad)
    (row,) = statistics(hub.engine, ["talk_persons"], "", "grain")
    assert row.values == {"talk_persons": 0}
    (row,) = statistics(hub.engine, ["talk_persons"], "", "ecology")
    assert row.values == {"talk_persons": 3}
