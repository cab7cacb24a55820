"""`duhub units` and `duhub campaigns`: list and read what the hub knows."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, tzinfo

import grpc

from duhub.cli import client
from duhub.cli.tables import render
from duhub.cli.timeargs import in_zone, zone_arg
from duhub.v1 import events_pb2 as epb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc

LEVEL = {
    epb.LEVEL_CITY: "市 city",
    epb.LEVEL_COUNTY: "县市区 county",
    epb.LEVEL_TOWNSHIP: "乡镇 township",
    epb.LEVEL_VILLAGE: "村社区 village",
}


def units(args: argparse.Namespace) -> int:
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    try:
        if args.parent is None:
            cities = stub.ListUnits(qpb.ListUnitsRequest(parent_id=""), timeout=30).units
            parent = cities[0].unit_id if cities else ""
        else:
            parent = args.parent
        reply = stub.ListUnits(qpb.ListUnitsRequest(parent_id=parent), timeout=30)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    if not reply.units:  # an empty table read as a fault
        print(f"no unit lies under {parent} (a village has none)", file=sys.stderr)
        return client.EXIT_OK
    rows = [
        [
            u.unit_id,
            u.name,
            LEVEL.get(u.level, u.level),
            u.child_count,
            ("sample " if u.sample else "") + ("local-id" if u.local_code else ""),
        ]
        for u in reply.units
    ]
    print(
        render(
            ["unit", "name 名称", "level", "children", "note"],
            rows,
            [False, False, False, True, False],
        )
    )
    if any(u.sample for u in reply.units):
        print("\nsample: reference data made up for the demo, not a real unit list")
    return client.EXIT_OK


def _moment(ts, zone: tzinfo = UTC) -> str:  # type: ignore[no-untyped-def]
    """Return a window's bound as the date when it is a midnight in `zone`, else the exact
    moment (RFC 3339 in UTC; in another zone with its offset): a window [12:30 on day 1, 12:30
    on day 31) is not [day 1, day 31). A campaign a Beijing office launched from its midnight
    was listed from 16:00 UTC the day before, beside whole UTC dates."""
    local, offset, fraction = in_zone(ts, zone)
    if ts.nanos == 0 and (local.hour, local.minute, local.second) == (0, 0, 0):
        return local.date().isoformat()
    if zone is UTC:
        return str(ts.ToJsonString())
    return f"{local:%Y-%m-%d %H:%M:%S}{fraction} {offset}"


def campaigns(args: argparse.Namespace) -> int:
    zone = zone_arg(args.time_zone)
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    try:
        # The table counts groups only; --json keeps naming every target, as it always did.
        request = qpb.ListCampaignsRequest(omit_targets=not args.json)
        reply = stub.ListCampaigns(request, timeout=30)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    rows = []
    for c in reply.campaigns:
        tiers = [
            sum(1 for g in c.groups if g.tier == t)
            for t in (epb.TIER_TASK_FORCE, epb.TIER_CITY, epb.TIER_COUNTY)
        ]
        rows.append(
            [
                c.campaign_id,
                c.name,
                c.area,
                "+".join(map(str, tiers)),
                _moment(c.starts_at, zone),
                _moment(c.ends_at, zone),
            ]
        )
    print(render(["campaign", "name 名称", "area", "groups 1+7+N", "from", "to (excl.)"], rows))
    if zone is not UTC:
        print(f"\nfrom and to in time zone {args.time_zone}")
    return client.EXIT_OK
