"""A question's time zone: an IANA name or a fixed RFC 3339 offset; anything else is refused
naming the field and the reason."""

from __future__ import annotations

import sys
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from duhub.timezones import parse_given_time_zone, parse_time_zone


def offset(zone, at: datetime) -> timedelta:  # type: ignore[no-untyped-def]
    return at.replace(tzinfo=zone).utcoffset()


def test_empty_is_utc() -> None:
    assert parse_time_zone("", "time_zone") is UTC


def test_a_zone_given_empty_is_refused_not_read_as_utc() -> None:
    """An option or parameter given empty is a script's unset variable: refused by name."""
    with pytest.raises(ValueError, match=r"^--time-zone: empty; give a zone \(an IANA name"):
        parse_given_time_zone("", "--time-zone")
    assert offset(parse_given_time_zone("+08:00", "z"), datetime(2022, 1, 1)) == timedelta(hours=8)


@pytest.mark.parametrize(
    ("text", "hours"),
    [("Asia/Shanghai", 8), ("+08:00", 8), ("-05:30", -5.5), ("+00:00", 0), ("UTC", 0)],
)
def test_names_and_offsets(text: str, hours: float) -> None:
    zone = parse_time_zone(text, "time_zone")
    assert offset(zone, datetime(2022, 12, 1)) == timedelta(hours=hours)


def test_an_iana_zone_keeps_its_daylight_saving_time() -> None:
    zone = parse_time_zone("America/Sao_Paulo", "time_zone")
    assert offset(zone, datetime(2018, 12, 1)) == timedelta(hours=-2)
    assert offset(zone, datetime(2018, 6, 1)) == timedelta(hours=-3)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Asia/Shangai", "time_zone: unknown time zone 'Asia/Shangai'"),
        ("asia/shanghai", "time_zone: unknown time zone 'asia/shanghai'"),
        ("Asia", "time_zone: unknown time zone 'Asia'"),
        ("zone.tab", "time_zone: unknown time zone 'zone.tab'"),
        ("../etc/passwd", "time_zone: unknown time zone '../etc/passwd'"),
        ("/etc/localtime", "time_zone: unknown time zone '/etc/localtime'"),
        ("Asia/Shanghai\x00", "time_zone: unknown time zone 'Asia/Shanghai\\x00'"),
        ("x" * 300, "time_zone: unknown time zone 'xxxx"),
        ("+24:00", "time_zone: offset '+24:00' out of range"),
        ("+08:60", "time_zone: offset '+08:60' out of range"),
        ("+8:00", "time_zone: unknown time zone '+8:00'"),
        ("+0800", "time_zone: unknown time zone '+0800'"),
        ("Z", "time_zone: unknown time zone 'Z'"),
    ],
)
def test_anything_else_is_refused_naming_the_field(text: str, why: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_time_zone(text, "time_zone")
    assert str(e.value).startswith(why), str(e.value)
    if "unknown" in why:  # and how to write one
        assert "Asia/Shanghai" in str(e.value) and "+08:00" in str(e.value)


@pytest.fixture
def no_tz_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A host without /usr/share/zoneinfo and without the tzdata package."""
    for name in [n for n in sys.modules if n.split(".")[0] == "tzdata"] + ["tzdata"]:
        monkeypatch.setitem(sys.modules, name, None)
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        yield
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


def test_without_a_time_zone_database_a_name_is_refused_saying_so(no_tz_database: None) -> None:
    with pytest.raises(ValueError) as e:
        parse_time_zone("Asia/Shanghai", "--time-zone")
    assert str(e.value).startswith(
        "--time-zone: no time zone database on this host to look 'Asia/Shanghai' up"
    ), str(e.value)
    # Offsets need none.
    assert offset(parse_time_zone("+08:00", "--time-zone"), datetime(2022, 1, 1)) == timedelta(
        hours=8
    )
