"""`duhub outbox status|retry`: what a node's outbox holds, and forwarding it again."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from duhub.cli.argtypes import client_target, seconds
from duhub.cli.tables import shown

if TYPE_CHECKING:
    from duhub.node.outbox import ForwardReport

# Kept light: the parser is built on every `duhub` call; grpc is imported only to run.
RETRY_FOR_S = 30.0


def add_parsers(sub, credential_opts) -> None:  # type: ignore[no-untyped-def]
    ob = sub.add_parser("outbox", help="the local outbox of publish: status, retry")
    osub = ob.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    for name, text in (
        ("status", "count pending, delivered and rejected events; list rejections"),
        (
            "retry",
            "forward the pending events (with --rejected: the rejected ones too); print what "
            "the hub answered, then what the outbox holds",
        ),
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
    from duhub.node.outbox import ACCEPTED, DUPLICATE, PENDING, REJECTED, Unreachable
    from duhub.v1 import ingest_pb2 as ipb

    address = client.target(args.target)
    # Only publish makes an outbox: one asked about that is not there is a mistyped path.
    box = open_outbox(args.outbox, address, create=False)
    sent: ForwardReport | None = None
    sent_rejections: list[dict[str, str]] = []  # what the hub rejected of what this retry sent
    gave_up: Unreachable | None = None
    try:
        if args.outbox_command == "retry":
            if args.rejected:
                box.retry_rejected()

            def on_result(row, r) -> None:  # type: ignore[no-untyped-def]
                if r.result == ipb.RESULT_REJECTED:
                    sent_rejections.append(_rejection(row.event_id, r.field, r.reason))

            try:
                sent = box.forward(
                    client.channel(address),
                    timeout=60,
                    give_up_after=args.retry_for,
                    on_result=on_result,
                )
            except Unreachable as e:
                # What the hub answered before the link dropped is said first, then why not
                # the rest: it was said of a retry that ended well only.
                sent, gave_up = e.report, e
            except grpc.RpcError as e:
                client.fail_rpc(e, address)
        counts = box.counts()
        # Delivered: the hub holds the event, whether it answered ACCEPTED or, to a copy sent
        # again (a file published twice, a lost reply), DUPLICATE: the outbox keeps the last
        # answer. Shown apart, a file sent twice read "0 accepted, 2 duplicate", as if nothing
        # had been accepted.
        counts["delivered"] = counts[ACCEPTED] + counts[DUPLICATE]
        rejected = box.rejected()
    finally:
        box.close()
    if args.json:
        state = {
            "outbox": str(box.path),
            **counts,
            "rejections": [_rejection(r.event_id, r.field, r.reason) for r in rejected],
        }
        if sent is not None:
            state = {"sent": _sent(sent, sent_rejections), **state}
        print(json.dumps(state, ensure_ascii=False, indent=2))
    else:
        if sent is not None:
            total = sent.accepted + sent.duplicate + sent.rejected
            print(
                f"sent {total} events: {sent.accepted} accepted, {sent.duplicate} duplicate, "
                f"{sent.rejected} rejected"
                if total
                else "sent nothing: no event was pending"
            )
            for r in sent_rejections:
                print(f"  {shown(r['event_id'])}: {shown(r['reason'])}")
        line = (
            f"{box.path}: {counts[PENDING]} pending, {counts['delivered']} delivered, "
            f"{counts[REJECTED]} rejected"
        )
        if sent is not None:  # the rejections this retry got are listed above
            print(line + (" (duhub outbox status lists them)" if rejected else ""))
        else:
            print(line)
            for r in rejected:
                print(f"  {shown(r.event_id)}: {shown(r.reason)}")
    if gave_up is not None:
        sys.stdout.flush()
        print(f"duhub: {gave_up.report.pending} events wait in {box.path}", file=sys.stderr)
        client.fail_rpc(gave_up.error, address)
    if counts[PENDING] and args.outbox_command == "retry":
        return client.EXIT_UNREACHABLE
    return client.EXIT_REJECTED if rejected else client.EXIT_OK


def _rejection(event_id: str, field: str, reason: str) -> dict[str, str]:
    return {"event_id": event_id, "field": field, "reason": reason}


def _sent(report: ForwardReport, rejections: list[dict[str, str]]) -> dict[str, object]:
    """What a retry sent, as the hub answered it."""
    return {
        "accepted": report.accepted,
        "duplicate": report.duplicate,
        "rejected": report.rejected,
        "rejections": rejections,
    }
