"""`duhub outbox status|retry`: what a node's outbox holds, and forwarding it again."""

from __future__ import annotations

import argparse
import json
import sys

from duhub.cli.argtypes import client_target, seconds

# Kept light: the parser is built on every `duhub` call; grpc is imported only to run.
RETRY_FOR_S = 30.0


def add_parsers(sub, credential_opts) -> None:  # type: ignore[no-untyped-def]
    ob = sub.add_parser("outbox", help="the local outbox of publish: status, retry")
    osub = ob.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    for name, text in (
        ("status", "count pending, accepted, duplicate and rejected events; list rejections"),
        ("retry", "forward the pending events (with --rejected: the rejected ones too)"),
    ):
        p = osub.add_parser(name, help=text)
        p.add_argument("--outbox", help="the outbox file (default: the target's, in ~/.cache)")
        p.add_argument(
            "--target",
            type=client_target,
            help="hub address HOST:PORT (default $DUHUB_TARGET or the local hub)",
        )
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        credential_opts(p)
        if name == "retry":
            p.add_argument(
                "--rejected", action="store_true", help="send the rejected events again too"
            )
            p.add_argument(
                "--retry-for",
                type=seconds,
                default=RETRY_FOR_S,
                metavar="SECONDS",
                help=f"retry while no hub answers for this long (default {RETRY_FOR_S:g})",
            )


def run(args: argparse.Namespace) -> int:
    import grpc

    from duhub.cli import client
    from duhub.cli.publish import open_outbox
    from duhub.node.outbox import PENDING, REJECTED, Unreachable

    address = client.target(args.target)
    # Only publish makes an outbox: one asked about that is not there is a mistyped path.
    box = open_outbox(args.outbox, address, create=False)
    try:
        if args.outbox_command == "retry":
            if args.rejected:
                box.retry_rejected()
            try:
                box.forward(client.channel(address), timeout=60, give_up_after=args.retry_for)
            except Unreachable as e:
                print(f"duhub: {e.report.pending} events wait in {box.path}", file=sys.stderr)
                client.fail_rpc(e.error, address)
            except grpc.RpcError as e:
                client.fail_rpc(e, address)
        counts = box.counts()
        rejected = box.rejected()
    finally:
        box.close()
    if args.json:
        listed = [{"event_id": r.event_id, "field": r.field, "reason": r.reason} for r in rejected]
        print(
            json.dumps(
                {"outbox": str(box.path), **counts, "rejections": listed},
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(
            f"{box.path}: {counts[PENDING]} pending, {counts['accepted']} accepted, "
            f"{counts['duplicate']} duplicate, {counts[REJECTED]} rejected"
        )
        for r in rejected:
            print(f"  {r.event_id}: {r.reason}")
    if counts[PENDING] and args.outbox_command == "retry":
        return client.EXIT_UNREACHABLE
    return client.EXIT_REJECTED if rejected else client.EXIT_OK
