"""Times on the command line and in the dashboard's parameters: RFC 3339 to the nanosecond,
as the hub's own times are, so a bound or an as-of moment copied from an answer means what it
says."""

from __future__ import annotations

import pytest

from duhub.convert import to_nanos
from duhub.readmodel.statistics import statistics
from duhub.timeparse import parse_time
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import YIDU, Pipeline, at, hierarchy, kinds, talk, ts


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("2022-11-02", at("2022-11-02")),
        ("2022-11-02T08:00:00+08:00", at("2022-11-02")),
        ("2022-11-02T00:00:00.5Z", at("2022-11-02") + 500_000_000),
        ("2022-11-02T00:00:00.000000501Z", at("2022-11-02") + 501),
        ("2022-11-02T08:00:00.123456789+08:00", at("2022-11-02") + 123_456_789),
        ("2022-11-02t00:00:00.000000001z", at("2022-11-02") + 1),  # RFC 3339 allows lowercase
    ],
)
def test_times_keep_every_digit_down_to_the_nanosecond(text: str, nanos: int) -> None:
    assert to_nanos(parse_time(text, "--from")) == nanos


def test_finer_than_a_nanosecond_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^--to: .*nanoseconds"):
        parse_time("2022-11-02T00:00:00.0000000001Z", "--to")


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("2022-11-02T00:00:00,5Z", at("2022-11-02") + 500_000_000),
        ("2022-11-02T00:00:00,123456789Z", at("2022-11-02") + 123_456_789),
        ("2022-11-02T08:00:00,25+08:00", at("2022-11-02") + 250_000_000),
    ],
)
def test_a_fraction_after_a_comma_keeps_its_digits(text: str, nanos: int) -> None:
    """ISO 8601 writes a fraction of a second after a comma too, and the parser took it, but
    the digits were dropped: ?from=...00,5Z asked from the whole second before."""
    assert to_nanos(parse_time(text, "--from")) == nanos


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # A full-width 1, as a Chinese input method types it, was read as .1.
        ("2022-11-02T00:00:00.\uff11Z", r"RFC 3339 time \(2022-01-01T00:00:00Z\)$"),
        ("2022-11-02T00:00:00.5,5Z", "two fractions"),  # taken as .5
    ],
)
def test_a_fraction_not_in_ascii_digits_or_given_twice_is_refused_naming_the_field(
    text: str, words: str
) -> None:
    with pytest.raises(ValueError, match=rf"^--as-of: .*{words}"):
        parse_time(text, "--as-of")


@pytest.mark.parametrize("text", ["2022-11-02T08:00:00+08:99", "2022-11-02T08:00:00+08:00:30"])
def test_an_offset_with_minutes_past_59_or_seconds_is_refused_naming_the_field(text: str) -> None:
    """+08:99 was taken as +09:39 (datetime reads any two digits): a slip answered for a
    window 99 minutes off."""
    with pytest.raises(ValueError, match=r"^--from: .*offset"):
        parse_time(text, "--from")


@pytest.mark.parametrize(
    "text",
    ["2022-01-01T00:00:00+24:00", "2022-01-01T00:00:00+23:60", "2022-01-01T00:00:00-99:00"],
)
def test_an_offset_of_24_hours_or_more_is_refused_by_the_offset_rule(text: str) -> None:
    """datetime refused these itself first, in its own words ('offset must be a timedelta
    strictly between -timedelta(hours=24) and timedelta(hours=24), not …')."""
    with pytest.raises(ValueError) as e:
        parse_time(text, "--from")
    assert str(e.value).endswith("the offset must be ±HH:MM, hours to 23, minutes to 59")
    assert "timedelta" not in str(e.value)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_offset_taking_a_time_past_the_calendar_is_refused_naming_the_field(text: str) -> None:
    """Year 1 at +01:00 is year 0 in UTC: it raised OverflowError, which the dashboard
    answered 500 (GET /api/statistics?from=0001-01-01T00:00:00%2B01:00) and the CLI with a
    traceback."""
    with pytest.raises(ValueError, match=r"^--from: .*0001-01-01 and 9999-12-31"):
        parse_time(text, "--from")


def test_an_answers_own_times_given_back_select_exactly_what_they_name() -> None:
    """The hub prints times to the nanosecond (explain's recordedAt, occurredAt): given back as
    --as-of or --from they must mean that instant, not the microsecond before it."""
    p = Pipeline.open()
    try:
        p.clock.now = at("2023-01-01")
        p.publish(hierarchy(), allow_reference=True)
        p.clock.now = at("2023-01-01T08:00:00") + 123_456_789  # recorded at ...:00.123456789
        t = at("2022-11-02") + 500  # happened at ...:00.000000500
        assert kinds(p.publish([talk(YIDU, 4, pb.TALK_KIND_OTHER, occurred_at=t)])) == ["accepted"]
        p.tailer.catch_up()

        def talk_persons(**kw: str) -> int:
            bounds = {k: to_nanos(parse_time(v, k)) for k, v in kw.items()}
            (row,) = statistics(
                p.engine,
                ["talk_persons"],
                YIDU,
                lo=bounds.get("lo"),
                hi=bounds.get("hi"),
                as_of=bounds.get("as_of"),
            )
            return row.values["talk_persons"]

        recorded = ts(p.clock.now).ToJsonString()
        assert recorded == "2023-01-01T08:00:00.123456789Z"
        assert talk_persons(as_of=recorded) == 4  # recorded at or before: counts
        occurred = ts(t).ToJsonString()
        assert talk_persons(lo=occurred) == 4  # [from, ...) holds its own start
        assert talk_persons(hi=occurred) == 0  # [..., to) does not hold its end
        assert talk_persons(lo="2022-11-02T00:00:00.000000501Z") == 0
    finally:
        p.close()


def test_a_date_is_midnight_in_the_zone_given() -> None:
    from datetime import timedelta, timezone
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    got = parse_time("2022-11-01", "--from", shanghai).ToJsonString()
    assert got == "2022-10-31T16:00:00Z"
    assert parse_time("2022-11-01", "--from").ToJsonString() == "2022-11-01T00:00:00Z"
    # A time with an offset of its own keeps it.
    got = parse_time("2022-11-01T00:00:00Z", "--from", shanghai).ToJsonString()
    assert got == "2022-11-01T00:00:00Z"
    # Where midnight was skipped (São Paulo, 2018-11-04), the day starts at the change.
    got = parse_time("2018-11-04", "--from", ZoneInfo("America/Sao_Paulo")).ToJsonString()
    assert got == "2018-11-04T03:00:00Z"
    # The first day east of UTC begins in year 0 in UTC: refused by name, not a traceback.
    with pytest.raises(ValueError, match="^--from: '0001-01-01' must lie between"):
        parse_time("0001-01-01", "--from", timezone(timedelta(hours=8)))
    got = parse_time("9999-12-31", "--to", timezone(-timedelta(hours=12))).ToJsonString()
    assert got == "9999-12-31T12:00:00Z"


@pytest.mark.parametrize("text", ["2022", "2022-1-1", "12/01/2022", "now", "+02022-01-01"])
def test_a_time_in_no_form_it_takes_is_said_so_without_pythons_words(text: str) -> None:
    """Before, the refusal ended in datetime's own "Invalid isoformat string: '2022'", the
    text quoted a second time."""
    with pytest.raises(ValueError) as e:
        parse_time(text, "--as-of")
    assert str(e.value) == (
        f"--as-of: {text!r} is not a date (2022-01-01) or RFC 3339 time (2022-01-01T00:00:00Z)"
    )
