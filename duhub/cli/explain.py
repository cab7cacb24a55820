"""`duhub explain`: the events behind one figure (lineage)."""

from __future__ import annotations

import argparse

import grpc

from duhub.cli import client
from duhub.cli.tables import render, shown
from duhub.cli.timeargs import time_arg, zone_arg
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc


def run(args: argparse.Namespace) -> int:
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    req = qpb.ExplainRequest(
        metric=args.metric, scope_unit_id=args.scope or "", area=args.area or "", limit=args.limit
    )
    # A bare date is midnight in the zone asked, as `query stats` reads it: a Beijing day's
    # row is explained with the same dates and zone.
    zone = zone_arg(args.time_zone)
    for name, value in (("from", args.from_), ("to", args.to), ("as_of", args.as_of)):
        # Given empty ("$UNSET") is refused, not the present.
        if (ts := time_arg(value, f"--{name.replace('_', '-')}", zone)) is not None:
            getattr(req, name).CopyFrom(ts)
    try:
        reply = stub.Explain(req, timeout=60)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    print(
        f"{shown(reply.metric)} = {reply.total}, from {reply.event_count} events"
        + (f" (the first {len(reply.events)} listed)" if reply.truncated else "")
    )
    rows = [
        [
            e.event_id,
            e.source,
            e.seq,
            _t(e.occurred_at),
            _t(e.recorded_at),
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


def _t(ts) -> str:  # type: ignore[no-untyped-def]
    # RFC 3339 to the nanosecond, as --as-of, --from and --to take it: cut to the second, a
    # record time given back as --as-of came before its own event.
    return ts.ToJsonString()
