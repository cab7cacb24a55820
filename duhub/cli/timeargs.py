"""The command line's times: --from, --to (or --through), --as-of and the --time-zone their bare
dates are read in (each refused by name, exit 2, before anything is asked of the hub)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta, tzinfo

from google.protobuf.timestamp_pb2 import Timestamp

from duhub.cli import client
from duhub.projections.timegrid import local_midnight
from duhub.timeparse import parse_day_end, parse_time
from duhub.timezones import parse_given_time_zone, parse_time_zone

# The zone a --time-zone left out means, for an office that counts in one zone: set once, not
# typed on every question. Unset or empty: UTC, the contract's.
ENV = "DUHUB_TIME_ZONE"


def add_time_zone(parser: argparse.ArgumentParser, what: str) -> None:
    """Add --time-zone to a command whose options take dates; `what` says what it decides."""
    parser.add_argument(
        "--time-zone",
        metavar="ZONE",
        help=f"the zone {what}: an IANA name (Asia/Shanghai) or an offset (+08:00, -05:00); "
        f"default ${ENV}, else UTC",
    )


def west_offsets_glued(argv: list[str]) -> list[str]:
    """Return argv with '--time-zone -05:00' as '--time-zone=-05:00': argparse reads a value
    starting with '-' (but a bare negative number) as an option of its own, and refused every
    zone west of UTC, "expected one argument"."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--time-zone" and re.match(r"-[0-9]", arg):
            out[-1] = f"--time-zone={arg}"
        else:
            out.append(arg)
    return out


def zone_from_environment(args: argparse.Namespace) -> None:
    """Fill a command's --time-zone left out from DUHUB_TIME_ZONE; exit 2 naming it when it
    names no zone, before the hub is asked."""
    if not hasattr(args, "time_zone") or args.time_zone is not None:
        return
    given = os.environ.get(ENV)
    if not given:  # set empty, as unset (DUHUB_TARGET's rule)
        return
    try:
        parse_time_zone(given, ENV)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    args.time_zone = given


def zone_option(value: str | None) -> tzinfo:
    """Return the zone --time-zone names (UTC when left out); ValueError names the option."""
    if value is None:
        return UTC
    return parse_given_time_zone(value, "--time-zone")


def zone_arg(value: str | None) -> tzinfo:
    """Return the zone --time-zone names (UTC when left out); exit 2 naming it otherwise."""
    try:
        return zone_option(value)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)


def time_arg(value: str | None, field: str, zone: tzinfo = UTC) -> Timestamp | None:
    """Return the time an option gives (a bare date: midnight in `zone`), None when left out;
    exit 2 naming the option otherwise."""
    if value is None:
        return None
    try:
        ts = parse_time(value, field, zone)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    if field == "--as-of":
        warn_if_to_come(ts, value)
    return ts


def day_end_arg(value: str, field: str, zone: tzinfo = UTC) -> Timestamp:
    """Return the end of the day an option names (the next day's start in `zone`); exit 2
    naming the option when it names no day."""
    try:
        return parse_day_end(value, field, zone)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)


def add_period(parser: argparse.ArgumentParser, note: str, through_note: str = "") -> None:
    """Add --from and the period's end: --to (exclusive, the contract's) or --through (a last
    day, inclusive), not both: a week's report typed '--to 2024-03-10' lost its Sunday."""
    parser.add_argument("--from", dest="from_", help=f"period start, inclusive {note}")
    end = parser.add_mutually_exclusive_group()
    end.add_argument("--to", help=f"period end, exclusive {note}")
    end.add_argument(
        "--through",
        metavar="DATE",
        help="the period's last day, inclusive: it ends at that day's end in --time-zone "
        f"(a date; instead of --to){through_note}",
    )


def period_end_arg(args: argparse.Namespace, zone: tzinfo) -> Timestamp | None:
    """Return the end of the period --to or --through gives (None: neither); exit 2 naming the
    option otherwise. --through's day must not end before --from (its day ends after a
    --from at its midnight): the hub's refusal would name `to`, an option not typed."""
    if args.through is None:
        return time_arg(args.to, "--to", zone)
    end = day_end_arg(args.through, "--through", zone)
    start = time_arg(args.from_, "--from", zone)
    if start is not None and end.ToNanoseconds() <= start.ToNanoseconds():
        client.fail(
            f"--through: {args.through} ends before --from {args.from_} starts", client.EXIT_USAGE
        )
    return end


def day_started(ts: Timestamp, zone: tzinfo) -> date | None:
    """Return the day `ts` starts in `zone` (as a bare date is read: its midnight, or where a
    change of offset skips it the change), None when it starts none."""
    try:
        day = ts.ToDatetime(tzinfo=UTC).astimezone(zone).date()
    except (OverflowError, ValueError):  # beyond 0001..9999 in the zone
        return None
    return day if ts.nanos == 0 and local_midnight(day, zone) == ts.seconds else None


def whole_days(start: Timestamp, end: Timestamp, zone: tzinfo) -> str | None:
    """Return [start, end) as the inclusive dates it covers when both ends are midnights in
    `zone` ('2024-03-04 to 2024-03-10 (7 days)'), None otherwise: the half-open end's ')'
    alone did not say the day it names is left out."""
    first, after = day_started(start, zone), day_started(end, zone)
    if first is None or after is None or after <= first:
        return None
    n = (after - first).days
    last = after - timedelta(days=1)
    return f"{first.isoformat()} to {last.isoformat()} ({n} day{'' if n == 1 else 's'})"


def occurred_before_arg(args: argparse.Namespace, zone: tzinfo) -> Timestamp | None:
    """Return the event-time bound of a coverage question: the end of --on's day, or
    --occurred-before (None: neither given)."""
    if args.on is not None:
        return day_end_arg(args.on, "--on", zone)
    return time_arg(args.occurred_before, "--occurred-before", zone)


def moment_shown(ts: Timestamp, zone: tzinfo = UTC) -> str:
    """A moment to the nanosecond, as RFC 3339 in UTC; in another `zone` first in it, with its
    offset (a bare --as-of date was its midnight there, and read as another day in UTC)."""
    utc = ts.ToJsonString()
    if zone is UTC:
        return utc
    local, offset, fraction = in_zone(ts, zone)
    return f"{local:%Y-%m-%d %H:%M:%S}{fraction} {offset} ({utc})"


def moment_given_back(ts: Timestamp, zone: tzinfo = UTC) -> str:
    """A moment to the nanosecond, as RFC 3339 that --as-of, --from and --to take back (cut to
    the second, a record time given back as --as-of came before its own event); in another
    `zone` in it, with its offset: `explain`'s times, where `moment_shown` is for reading."""
    if zone is UTC:
        return ts.ToJsonString()
    local, offset, fraction = in_zone(ts, zone)
    return f"{local:%Y-%m-%dT%H:%M:%S}{fraction}{offset}"


def in_zone(ts: Timestamp, zone: tzinfo) -> tuple[datetime, str, str]:
    """Return the moment `ts` in `zone`, its offset as written there (±HH:MM, or ±HH:MM:SS for
    a zone's local mean time) and its fraction of a second ('' or '.5': nanoseconds without
    trailing zeros), for the commands that print moments in a zone."""
    local = ts.ToDatetime(tzinfo=UTC).astimezone(zone)
    offset = local.isoformat(timespec="seconds")[19:]
    fraction = f".{ts.nanos:09d}".rstrip("0") if ts.nanos else ""
    return local, offset, fraction


def warn_if_to_come(as_of: Timestamp, given: str) -> None:
    """Say on stderr when an --as-of lies after now: the hub answers with what it holds so far,
    which later events change (`--as-of 2026-12-07 --time-zone Asia/Shanghai`, meant as the
    end of today, is 16:00 UTC: asked before then, the figure was not what it would be)."""
    if as_of.ToNanoseconds() > time.time_ns():
        print(
            f"duhub: warning: --as-of {given} ({as_of.ToJsonString()}) is still to come: the "
            "figures are what the hub holds so far, and may change until then",
            file=sys.stderr,
        )
