"""The audit report: every metric for every county-level unit for a period, each figure with
the number of events behind it, asked of the running hub."""

from __future__ import annotations

import argparse

import grpc

from duhub.cli import client
from duhub.domain import metrics as m
from duhub.timeparse import parse_time
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc


def county_report(args: argparse.Namespace) -> tuple[list[dict[str, object]], list[str]]:
    """Return one row per county-level unit (and a total) with values and event counts."""
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    metrics = list(m.ALL)
    req = qpb.GetStatisticsRequest(
        metrics=metrics, group_by=qpb.GROUP_BY_UNIT, area=args.area or ""
    )
    try:
        getattr(req, "from").CopyFrom(parse_time(args.from_, "--from"))
        req.to.CopyFrom(parse_time(args.to, "--to"))
        if args.as_of:
            req.as_of.CopyFrom(parse_time(args.as_of, "--as-of"))
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    try:
        reply = stub.GetStatistics(req, timeout=60)
        whole = qpb.GetStatisticsRequest()
        whole.CopyFrom(req)
        whole.ClearField("group_by")
        total = stub.GetStatistics(whole, timeout=60)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    rows: list[dict[str, object]] = [
        {
            "county": r.key,
            "name": r.name,
            "values": {x: r.values[x] for x in metrics},
            "events": {x: r.events[x] for x in metrics},
        }
        for r in reply.rows
    ]
    t = total.rows[0]
    rows.append(
        {
            "county": "total",
            "name": "合计",
            "values": {x: t.values[x] for x in metrics},
            "events": {x: t.events[x] for x in metrics},
        }
    )
    return rows, metrics
