"""The period before a period (`previous_period`): calendar months, local days, or as long."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from duhub.projections.previous import previous_period
from duhub.projections.timegrid import NS

BEIJING, BERLIN, UTC = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin"), ZoneInfo("UTC")


def ns(text: str, zone: ZoneInfo) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()) * NS


@pytest.mark.parametrize(
    ("lo", "hi", "zone", "before"),
    [
        # A calendar month: February (29 days in 2024), not the 31 days before April 1st.
        ("2024-03-01", "2024-04-01", BEIJING, "2024-02-01"),
        ("2024-03-01", "2024-04-01", UTC, "2024-02-01"),
        # A quarter, and a year across a year's end.
        ("2024-04-01", "2024-07-01", BEIJING, "2024-01-01"),
        ("2024-01-01", "2025-01-01", BEIJING, "2023-01-01"),
        ("2024-01-01", "2024-02-01", BEIJING, "2023-12-01"),
        # A week, and a span of days starting on a month's first day but not ending on one.
        ("2024-03-11", "2024-03-18", BEIJING, "2024-03-04"),
        ("2024-03-01", "2024-03-08", BEIJING, "2024-02-23"),
        # A Berlin week across the change to summer time (167 hours) is the week before,
        # Monday to Monday, not 167 hours before (a Sunday 23:00).
        ("2024-03-25", "2024-04-01", BERLIN, "2024-03-18"),
        # April against March, which holds the change (30 days and 23 hours long).
        ("2024-04-01", "2024-05-01", BERLIN, "2024-03-01"),
    ],
)
def test_midnights_go_back_by_calendar(lo: str, hi: str, zone: ZoneInfo, before: str) -> None:
    assert previous_period(ns(lo, zone), ns(hi, zone), zone) == (ns(before, zone), ns(lo, zone))


def test_other_periods_go_back_as_long() -> None:
    lo, hi = ns("2024-03-01T12:00:00", BEIJING), ns("2024-04-01T00:00:00", BEIJING)
    assert previous_period(lo, hi, BEIJING) == (ns("2024-01-31T00:00:00", BEIJING), lo)
    # Midnights in Beijing are 16:00 in UTC: asked in UTC, they are no midnights.
    lo, hi = ns("2024-03-01", BEIJING), ns("2024-04-01", BEIJING)
    assert previous_period(lo, hi, UTC) == (lo - (hi - lo), lo)


def test_a_period_before_year_one_is_refused() -> None:
    with pytest.raises(ValueError, match="before 0001-01-01"):
        previous_period(ns("0001-01-01", UTC), ns("0001-02-01", UTC), UTC)
