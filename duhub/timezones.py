"""A question's time zone: the zone its periods (and, on the command line, its bare dates)
are counted in. Empty is UTC; else an IANA name (Asia/Shanghai) or a fixed RFC 3339 offset
(+08:00)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, timedelta, timezone, tzinfo

from duhub.timeparse import OFFSET

# The shape of an offset; its range is the rule all offsets keep (timeparse.OFFSET).
_OFFSET = re.compile(r"([+-])([0-9]{2}):([0-9]{2})")
HOW = "an IANA name such as Asia/Shanghai, or an offset such as +08:00"


def parse_time_zone(text: str, field: str) -> tzinfo:
    """Return the zone `text` names; ValueError names `field` and the reason."""
    if not text:
        return UTC
    if m := _OFFSET.fullmatch(text):
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3))
        if not re.fullmatch(OFFSET, text):
            raise ValueError(f"{field}: offset {text!r} out of range: hours 00-23, minutes 00-59")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if sign == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(text)
    except zoneinfo.ZoneInfoNotFoundError:
        if not _have_database():
            raise ValueError(
                f"{field}: no time zone database on this host to look {text!r} up "
                f"(install the tzdata package, or give an offset such as +08:00)"
            ) from None
    # Not a file of the database: a directory (Asia), another file (zone.tab), a path out of
    # it, a NUL, a name too long for the file system.
    except (ValueError, OSError):
        pass
    raise ValueError(f"{field}: unknown time zone {text!r}; {HOW}")


def parse_given_time_zone(text: str, field: str) -> tzinfo:
    """Return the zone an option or parameter given explicitly names. Given empty it is
    refused, not read as UTC: an unset variable in a script, as an empty time is refused."""
    if not text:
        raise ValueError(f"{field}: empty; give a zone ({HOW}) or leave it out")
    return parse_time_zone(text, field)


def _have_database() -> bool:
    try:
        zoneinfo.ZoneInfo("UTC")  # a file of every tz database, as any name is
    except zoneinfo.ZoneInfoNotFoundError:
        return False
    return True
