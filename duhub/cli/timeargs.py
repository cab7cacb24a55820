"""The command line's times: --from, --to, --as-of and the --time-zone their bare dates are
read in (each refused by name, exit 2, before anything is asked of the hub)."""

from __future__ import annotations

import argparse
from datetime import UTC, tzinfo

from google.protobuf.timestamp_pb2 import Timestamp

from duhub.cli import client
from duhub.timeparse import parse_time
from duhub.timezones import parse_given_time_zone


def add_time_zone(parser: argparse.ArgumentParser, what: str) -> None:
    """Add --time-zone to a command whose options take dates; `what` says what it decides."""
    parser.add_argument(
        "--time-zone",
        metavar="ZONE",
        help=f"the zone {what}: an IANA name (Asia/Shanghai) or an offset (+08:00; one west "
        "of UTC as --time-zone=-05:00); default UTC",
    )


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
        return parse_time(value, field, zone)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
