"""Answers worked out by hand against the contract's Metrics and Query semantics, at the
edges: the bounds of valid event times, and as-of moments between two covering visits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from duhub.readmodel.coverage import coverage
from duhub.readmodel.lineage import explain
from duhub.readmodel.statistics import QueryError, figures, statistics
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
    problem,
    rectify,
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


def _by(hub: Pipeline, kind: str, lo: int, hi: int) -> list[tuple[str, dict[str, int]]]:
    metrics = ["talk_persons", "problems_open"]
    return [(r.key, r.values) for r in statistics(hub.engine, metrics, "", "", lo, hi, kind)]


def test_periods_outside_the_valid_event_times_are_listed_with_their_figures(
    hub: Pipeline,
) -> None:
    """Ingest refuses event times before 2000-01-01 and from 2100-01-01 on, so the periods
    out there hold no events: they are still periods of [from, to) and are listed (zeros,
    and problems_open as it stands then), not left out."""
    publish(hub, talk(YIDU, 3, occurred_at=at("2000-01-01")), 1, at("2023-02-01T00:00:01"))
    publish(hub, problem("p1", YIDU, occurred_at=at("2000-01-15")), 2, at("2023-02-01T00:00:02"))
    hub.tailer.catch_up()
    zero = {"talk_persons": 0, "problems_open": 0}
    assert _by(hub, "month", at("1999-11-01"), at("2000-03-01")) == [
        ("1999-11-01", zero),
        ("1999-12-01", zero),
        ("2000-01-01", {"talk_persons": 3, "problems_open": 1}),
        ("2000-02-01", {"talk_persons": 0, "problems_open": 1}),
    ]
    assert _by(hub, "year", at("1998-01-01"), at("2001-01-01")) == [
        ("1998-01-01", zero),
        ("1999-01-01", zero),
        ("2000-01-01", {"talk_persons": 3, "problems_open": 1}),
    ]
    # The week of Monday 1999-12-27 holds 2000-01-01.
    assert _by(hub, "week", at("1999-12-20"), at("2000-01-03")) == [
        ("1999-12-20", zero),
        ("1999-12-27", {"talk_persons": 3, "problems_open": 0}),
    ]
    still_open = {"talk_persons": 0, "problems_open": 1}
    assert _by(hub, "month", at("2099-12-01"), at("2100-03-01")) == [
        ("2099-12-01", still_open),
        ("2100-01-01", still_open),
        ("2100-02-01", still_open),
    ]
    # Not grouped: a period wholly before 2000 or after 2100 is a question too.
    assert _by(hub, "", at("1990-01-01"), at("1995-01-01")) == [("", zero)]
    assert _by(hub, "", at("2200-01-01"), at("2300-01-01")) == [("", still_open)]
    with pytest.raises(QueryError, match="^to: must be after from"):
        _by(hub, "", at("1995-01-01"), at("1990-01-01"))
    with pytest.raises(QueryError, match="^to: must be after from"):  # empty: README says so
        _by(hub, "", at("1995-01-01"), at("1995-01-01"))


def test_explain_answers_a_period_outside_the_valid_event_times_as_statistics_do(
    hub: Pipeline,
) -> None:
    """`duhub explain` shows the events behind a figure: for a period wholly before 2000 or
    after 2100 that is none, or the problems still open then, not a refusal."""
    publish(hub, problem("p1", YIDU, occurred_at=at("2000-01-15")), 1, at("2023-02-01T00:00:01"))
    hub.tailer.catch_up()
    before = explain(hub.engine, "problems_open", "", "", at("1990-01-01"), at("1995-01-01"))
    assert (before.total, before.event_count) == (0, 0)
    after = explain(hub.engine, "problems_open", "", "", at("2200-01-01"), at("2300-01-01"))
    assert (after.total, [c.event_id for c in after.events]) == (1, ["e1"])
    with pytest.raises(QueryError, match="^to: must be after from"):
        explain(hub.engine, "problems_open", "", "", at("1995-01-01"), at("1990-01-01"))


def test_grouping_by_period_reaches_the_ends_of_a_timestamp(hub: Pipeline) -> None:
    """Periods are counted in the calendar of a protobuf Timestamp (0001-01-01 to
    9999-12-31): the last one ends at `to`, and bounds beyond are refused naming the field."""
    hub.tailer.catch_up()  # the reference hierarchy: the city is known
    last = at("9999-12-31T23:59:59")
    assert [k for k, _ in _by(hub, "month", at("9999-11-01"), last)] == [
        "9999-11-01",
        "9999-12-01",
    ]
    assert [k for k, _ in _by(hub, "year", at("0001-01-01"), at("0003-01-01"))] == [
        "0001-01-01",
        "0002-01-01",
    ]
    with pytest.raises(QueryError, match="^from: must lie between 0001-01-01 and 9999-12-31"):
        _by(hub, "year", at("0001-01-01") - 1, at("0003-01-01"))
    with pytest.raises(QueryError, match="^to: must lie between 0001-01-01 and 9999-12-31"):
        _by(hub, "year", at("9998-01-01"), last + 10**15)


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


def test_by_unit_the_scopes_own_events_come_with_its_childrens_rows(hub: Pipeline) -> None:
    """A county's own events (a talk with its leaders, a problem found at its HQ) are in none
    of its townships' rows. The answer by unit names them, read with the rows: asked apart,
    a change between the two answers was taken for the scope's own (the dashboard's "本级"
    bar). Own and rows add up to the scope's figure, as of a moment and for an area too."""
    t0 = at("2023-02-01T01:00:00")
    publish(hub, talk(YIDU, 3, area="ecology", occurred_at=at("2022-11-02")), 1, t0)
    publish(hub, talk(YIDU_T1, 2, area="ecology", occurred_at=at("2022-11-03")), 2, t0 + 1)
    publish(hub, problem("p1", YIDU, occurred_at=at("2022-11-04")), 3, t0 + 2)
    publish(hub, problem("p2", YIDU_T1, occurred_at=at("2022-11-04")), 4, t0 + 3)
    publish(hub, rectify("p1", occurred_at=at("2022-11-05")), 5, t0 + 4)
    publish(hub, talk(YIDU, 5, area="grain", occurred_at=at("2022-11-06")), 6, t0 + 5)
    hub.tailer.catch_up()
    metrics = ["talk_persons", "problems_found", "problems_open"]

    def own(area: str = "", as_of: int | None = None) -> dict[str, int]:
        answer = figures(hub.engine, metrics, YIDU, area, None, None, "unit", as_of)
        (whole,) = statistics(hub.engine, metrics, YIDU, area, as_of=as_of)
        assert answer.own is not None and (answer.own.key, answer.own.name) == (
            YIDU,
            f"unit {YIDU}",
        )
        summed = {x: sum(r.values[x] for r in [answer.own, *answer.rows]) for x in metrics}
        assert summed == whole.values
        return answer.own.values

    assert own() == {"talk_persons": 8, "problems_found": 1, "problems_open": 0}
    assert own("ecology") == {"talk_persons": 3, "problems_found": 1, "problems_open": 0}
    assert own(as_of=t0 + 3) == {"talk_persons": 3, "problems_found": 1, "problems_open": 1}
    # Not grouped by unit, there is no own row.
    assert figures(hub.engine, metrics, YIDU).own is None
