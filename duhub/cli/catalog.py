"""`duhub units` and `duhub campaigns`: list and read what the hub knows."""

from __future__ import annotations

import argparse

import grpc

from duhub.cli import client
from duhub.cli.tables import render
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


def _moment(ts) -> str:  # type: ignore[no-untyped-def]
    """Return a window's bound as the date when it is a UTC midnight, else the exact moment
    (RFC 3339): a window [12:30 on day 1, 12:30 on day 31) is not [day 1, day 31)."""
    if ts.seconds % 86400 == 0 and ts.nanos == 0:
        return ts.ToDatetime().date().isoformat()
    return str(ts.ToJsonString())


def campaigns(args: argparse.Namespace) -> int:
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
                _moment(c.starts_at),
                _moment(c.ends_at),
            ]
        )
    print(render(["campaign", "name 名称", "area", "groups 1+7+N", "from", "to (excl.)"], rows))
    return client.EXIT_OK
