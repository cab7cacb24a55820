"""`duhub deadletters`: the records of the log the hub refused, newest first."""

from __future__ import annotations

import argparse

import grpc

from duhub.cli import client
from duhub.cli.tables import render
from duhub.cli.timeargs import moment_given_back, time_arg, zone_arg
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc


def run(args: argparse.Namespace) -> int:
    zone = zone_arg(args.time_zone)
    req = qpb.ListDeadLettersRequest(source=args.source or "", limit=args.limit)
    if (since := time_arg(args.since, "--since", zone)) is not None:
        req.since.CopyFrom(since)
    address = client.target(args.target)
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    try:
        reply = stub.ListDeadLetters(req, timeout=60)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    if args.json:
        print(client.reply_json(reply))
        return client.EXIT_OK
    listed = len(reply.dead_letters)
    print(
        f"{reply.total} dead letter{'' if reply.total == 1 else 's'}"
        + (f" (the newest {listed} listed)" if reply.truncated else "")
    )
    if not listed:
        return client.EXIT_OK
    rows = [
        [
            moment_given_back(d.recorded_at, zone) if d.HasField("recorded_at") else "—",
            f"{d.partition}:{d.offset}",
            d.event_id or "—",
            d.source or "—",
            d.reason,
        ]
        for d in reply.dead_letters
    ]
    print(render(["recorded", "log", "event", "source", "reason"], rows))
    return client.EXIT_OK
