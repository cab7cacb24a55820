"""Times on the command line: RFC 3339 instants or dates (midnight UTC, or in the zone given)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo

from google.protobuf.timestamp_pb2 import Timestamp

from duhub.projections.timegrid import FIRST_NS, LAST_NS, NS, local_midnight

# The fraction of a second of an RFC 3339 time: up to nanoseconds, as the hub's times are
# (datetime keeps microseconds and would drop the rest). After a comma too, as ISO 8601 and
# datetime allow: left to datetime, its digits were dropped. ASCII digits only (\d took '１').
_FRACTION = re.compile(r"[.,]([0-9]+)")
# RFC 3339's offset from UTC: hours to 23, minutes to 59. datetime and protobuf's JSON parser
# read any two digits (+08:99 was +09:39; '+80:00', a slip for +08:00, moved an event 80
# hours). One rule for every place that reads an offset: the command line's and API's times
# here, a published event's times (cli/publish.py), a question's zone (timezones.py).
OFFSET_HOURS = "(?:[01][0-9]|2[0-3])"
OFFSET_MINUTES = "[0-5][0-9]"
OFFSET = f"[+-]{OFFSET_HOURS}:{OFFSET_MINUTES}"
# Here the colon may be left out (+0800), as ISO 8601's basic form has it.
_OFFSET = re.compile(f"[+-]{OFFSET_HOURS}:?{OFFSET_MINUTES}")


def parse_time(text: str, field: str, zone: tzinfo = UTC) -> Timestamp:
    """Return a Timestamp for '2022-01-01' (the start of that day in `zone`) or
    '2022-01-01T08:00:00.123456789+08:00' (to the nanosecond); ValueError names the field."""
    text = text.strip()
    try:
        if len(text) == 10:
            # As a period starts (timegrid): where midnight is skipped, at the change.
            seconds, nanos = local_midnight(date.fromisoformat(text), zone), 0
        else:
            seconds, nanos = _instant(text)
    except ValueError as e:
        # datetime's "Invalid isoformat string: '…'" says only that again, in Python's words.
        why = "" if str(e).startswith("Invalid isoformat string") else f": {e}"
        raise ValueError(
            f"{field}: {text!r} is not a date (2022-01-01) or RFC 3339 time "
            f"(2022-01-01T00:00:00Z){why}"
        ) from None
    if not FIRST_NS <= seconds * NS < LAST_NS:  # year 1 at +01:00 is year 0 in UTC
        raise ValueError(f"{field}: {text!r} must lie between 0001-01-01 and 9999-12-31 in UTC")
    return Timestamp(seconds=seconds, nanos=nanos)


def parse_day_end(text: str, field: str, zone: tzinfo = UTC) -> Timestamp:
    """Return the end of the day '2022-11-20' names in `zone`: the next day's start, so that
    "on that day" counts everything before it; ValueError names the field. A date only: a
    moment would leave which day it means to the reader."""
    text = text.strip()
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
        why = ""
    except ValueError as e:  # '2022-02-30': "day is out of range for month"
        day, why = None, "" if str(e).startswith("Invalid isoformat string") else f": {e}"
    if day is None:
        raise ValueError(f"{field}: {text!r} is not a date (2022-11-20){why}")
    if day == date.max:
        raise ValueError(f"{field}: {text!r} must lie before 9999-12-31")
    return parse_time((day + timedelta(days=1)).isoformat(), field, zone)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(text: str) -> tuple[int, int]:
    """Return the epoch seconds and nanoseconds of an RFC 3339 time."""
    # RFC 3339 allows a lowercase t and z.
    clock = text[:10] + text[10:].upper()
    nanos = 0
    fraction = _FRACTION.search(clock, 10)
    if fraction is not None:
        digits = fraction.group(1)
        if len(digits) > 9:
            raise ValueError("more than 9 digits of a second (nanoseconds at most)")
        nanos = int(digits.ljust(9, "0"))
        clock = clock[: fraction.start()] + clock[fraction.end() :]
        if _FRACTION.search(clock, 10):  # '.5,5': datetime took the second one
            raise ValueError("two fractions of a second")
    # The offset's rule before datetime's: it refuses +24:00 and past in words of its own.
    sign = max(clock.rfind("+"), clock.rfind("-", 10))
    if sign > 10 and not _OFFSET.fullmatch(clock, sign):
        raise ValueError("the offset must be ±HH:MM, hours to 23, minutes to 59")
    moment = datetime.fromisoformat(clock.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an RFC 3339 time needs an offset, e.g. Z or +08:00")
    # Aware arithmetic: year 1 at +01:00 (year 0 in UTC) made in a datetime overflowed.
    return (moment - _EPOCH) // timedelta(seconds=1), nanos
