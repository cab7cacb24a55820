"""The audit report: every metric for every county-level unit for a period, each figure with
the number of events behind it, asked of the running hub."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from duhub.cli import client
from duhub.cli.timeargs import warn_if_to_come, zone_option
from duhub.domain import metrics as m
from duhub.timeparse import parse_time
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc

T = TypeVar("T")

# How many times the report is read again when the hub commits while it is being read.
ATTEMPTS = 50


class Unsettled(Exception):
    """The read model changed while each attempt was read."""


def in_one_state(
    stub: query_pb2_grpc.QueryServiceStub,
    read: Callable[[qpb.Progress], T],
    attempts: int = ATTEMPTS,
) -> T:
    """Return `read(progress)` taken while the read model stayed in one state.

    `progress` is the read model's as the attempt began, with the moment of its knowledge
    (`known_at`). Every commit moves the applied log positions (they commit with the rows),
    so equal positions before and after mean the whole read saw one state; otherwise read
    again: a hub behind its log may commit events recorded before the moment read."""
    for _ in range(attempts):
        before = stub.GetProgress(qpb.GetProgressRequest(with_known_at=True), timeout=60)
        got = read(before)
        after = stub.GetProgress(qpb.GetProgressRequest(), timeout=60)
        if after.partitions == before.partitions:
            return got
    raise Unsettled(
        f"the hub's read model changed while the report was read, {attempts} times in a row; "
        "try again, or pass --as-of a moment the hub has applied"
    )


def request(args: argparse.Namespace) -> qpb.GetStatisticsRequest:
    """Return the by-county question the options ask; ValueError names a bad option."""
    req = qpb.GetStatisticsRequest(
        metrics=list(m.ALL), group_by=qpb.GROUP_BY_UNIT, area=args.area or ""
    )
    zone = zone_option(args.time_zone)  # a bare date is midnight there, as `query stats` reads it
    getattr(req, "from").CopyFrom(parse_time(args.from_, "--from", zone))
    req.to.CopyFrom(parse_time(args.to, "--to", zone))
    if args.as_of is not None:  # given empty (a script's unset variable): refused, not "now"
        req.as_of.CopyFrom(parse_time(args.as_of, "--as-of", zone))
        warn_if_to_come(req.as_of, args.as_of)
    return req


@dataclass(frozen=True)
class Report:
    """The rows (each county-level unit, the total last) and the as-of they were read at:
    given back as --as-of, it reads every figure again as here."""

    rows: list[dict[str, object]]
    as_of: Timestamp


def report_rows(stub: query_pb2_grpc.QueryServiceStub, req: qpb.GetStatisticsRequest) -> Report:
    """Return one row per county-level unit and a total, all from one state of the hub.

    Both answers are asked at one as-of: --as-of, else the moment of the hub's knowledge
    (`known_at`, 1970 when it holds nothing). Unpinned, each answered for "now", and a
    published figure named no moment it could be asked again for."""

    def read(progress: qpb.Progress) -> tuple[Timestamp, qpb.Statistics, qpb.Statistics]:
        by_county = qpb.GetStatisticsRequest()
        by_county.CopyFrom(req)
        if not req.HasField("as_of"):
            by_county.as_of.CopyFrom(progress.known_at)  # unset: the epoch, before any
        whole = qpb.GetStatisticsRequest()
        whole.CopyFrom(by_county)
        whole.ClearField("group_by")
        return (
            by_county.as_of,
            stub.GetStatistics(by_county, timeout=60),
            stub.GetStatistics(whole, timeout=60),
        )

    as_of, reply, total = in_one_state(stub, read)
    metrics = list(req.metrics)

    def row(county: str, name: str, r: qpb.StatisticsRow) -> dict[str, object]:
        return {
            "county": county,
            "name": name,
            "values": {x: r.values[x] for x in metrics},
            "events": {x: r.events[x] for x in metrics},
        }

    # The city's own events (its command's visits and talks at the city itself) are in no
    # county's row: a row of their own, first, as `query stats --group-by unit` lists it, so
    # the rows add up to the total. Left out when there are none.
    own = reply.own
    first = [row(own.key, f"{own.name} 本级", own)] if _any(own, metrics) else []
    counties = [row(r.key, r.name, r) for r in reply.rows]
    return Report(first + counties + [row("total", "合计", total.rows[0])], as_of)


def _any(r: qpb.StatisticsRow, metrics: list[str]) -> bool:
    return any(r.values[x] or r.events[x] for x in metrics)


def county_report(args: argparse.Namespace) -> tuple[Report, list[str]]:
    """Return one row per county-level unit (and a total) with values and event counts, and
    the as-of they were read at."""
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    try:
        req = request(args)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    try:
        return report_rows(stub, req), list(req.metrics)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    except Unsettled as e:
        client.fail(str(e), client.EXIT_NOT_COMPARED)
