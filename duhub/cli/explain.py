"""`duhub explain`: the events behind one figure (lineage)."""

from __future__ import annotations

import argparse
import sys

import grpc

from duhub.cli import client
from duhub.cli.tables import render, shown
from duhub.cli.timeargs import (
    moment_given_back,
    moment_shown,
    occurred_before_arg,
    period_end_arg,
    time_arg,
    zone_arg,
)
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc

# Options of one kind of explanation only: given with the other, refused (exit 2), not left
# unread (an --area that narrowed nothing would read as the coverage of that area).
FIGURE_ONLY = (("area", "--area"), ("from_", "--from"), ("to", "--to"), ("through", "--through"))
COVERAGE_ONLY = (("group", "--group"), ("on", "--on"), ("occurred_before", "--occurred-before"))


def run(args: argparse.Namespace) -> int:
    given, kind, other = (
        (FIGURE_ONLY, "--campaign", "--metric")
        if args.campaign is not None
        else (COVERAGE_ONLY, "--metric", "--campaign")
    )
    for attr, option in given:
        if getattr(args, attr) is not None:
            client.fail(
                f"{option}: not with {kind} (it narrows an explanation of {other})",
                client.EXIT_USAGE,
            )
    if args.campaign is not None:
        return _coverage(args)
    return _figure(args)


def _coverage(args: argparse.Namespace) -> int:
    """The visit that covered each covered target of a campaign."""
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    req = qpb.ExplainCoverageRequest(
        campaign_id=args.campaign,
        scope_unit_id=args.scope or "",
        group_id=args.group or "",
        limit=args.limit,
    )
    zone = zone_arg(args.time_zone)
    if (as_of := time_arg(args.as_of, "--as-of", zone)) is not None:
        req.as_of.CopyFrom(as_of)
    if (before := occurred_before_arg(args, zone)) is not None:
        req.occurred_before.CopyFrom(before)
    try:
        reply = stub.ExplainCoverage(req, timeout=60)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    head = f"{shown(reply.campaign_id)}"
    if reply.group_id:
        head += f" group {shown(reply.group_id)}"
    head += f": {reply.covered} of {reply.targets} targets covered"
    if reply.HasField("occurred_before"):
        head += f", by visits before {moment_shown(reply.occurred_before, zone)}"
    if reply.HasField("as_of"):
        head += f", as of {moment_shown(reply.as_of, zone)}"
    if reply.truncated:
        head += f" (the first {len(reply.visits)} listed)"
    print(head)
    if not reply.visits:  # the head says how many: no table without a row
        return client.EXIT_OK
    unnamed = 0
    rows = []
    for v in reply.visits:
        unnamed += not v.event_id
        rows.append(
            [
                v.group_id,
                v.unit_id,
                shown(v.unit_name),
                v.event_id or "?",
                v.source or "—",
                v.seq if v.event_id else "—",
                moment_given_back(v.occurred_at, zone),
                moment_given_back(v.recorded_at, zone),
                f"{v.partition}:{v.offset}" if v.event_id else "—",
            ]
        )
    print(
        render(
            ["group", "target", "name", "event", "source", "seq", "occurred", "recorded", "log"],
            rows,
            [False, False, False, False, False, True, False, False, False],
        )
    )
    if unnamed:
        print(
            f"? {unnamed}: which visit covered them this read model cannot tell (made before "
            "visits were named, its facts hold another visit at the target at that moment): a "
            "read model rebuilt from the log ('duhub replay --fresh --into URL') names them",
            file=sys.stderr,
        )
    return client.EXIT_OK


def _figure(args: argparse.Namespace) -> int:
    """The events behind one figure."""
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    req = qpb.ExplainRequest(
        metric=args.metric, scope_unit_id=args.scope or "", area=args.area or "", limit=args.limit
    )
    # A bare date is midnight in the zone asked, as `query stats` reads it: a Beijing day's
    # row is explained with the same dates and zone.
    zone = zone_arg(args.time_zone)
    # Given empty ("$UNSET") is refused, not the present. --through: the end of its day.
    for name, ts in (
        ("from", time_arg(args.from_, "--from", zone)),
        ("to", period_end_arg(args, zone)),
        ("as_of", time_arg(args.as_of, "--as-of", zone)),
    ):
        if ts is not None:
            getattr(req, name).CopyFrom(ts)
    try:
        reply = stub.Explain(req, timeout=60)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    print(
        f"{shown(reply.metric)} = {reply.total}, from {reply.event_count} "
        + ("event" if reply.event_count == 1 else "events")
        + (f" (the first {len(reply.events)} listed)" if reply.truncated else "")
    )
    if not reply.events:
        return client.EXIT_OK
    rows = [
        [
            e.event_id,
            e.source,
            e.seq,
            moment_given_back(e.occurred_at, zone),
            moment_given_back(e.recorded_at, zone),
            f"{e.partition}:{e.offset}",
            e.unit_id,
            e.area or "—",
            e.value,
        ]
        for e in reply.events
    ]
    print(
        render(
            [
                "event",
                "source",
                "seq",
                "occurred",
                "recorded",
                "log",
                "unit",
                "area",
                "adds",
            ],
            rows,
            [False, False, True, False, False, False, False, False, True],
        )
    )
    return client.EXIT_OK
