"""`duhub publish FILE`: send a JSON Lines file of events to the running hub."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format

from duhub.cli import client
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc, query_pb2_grpc
from duhub.v1 import query_pb2 as qpb

BATCH = 500
RETRIES = 5


@dataclass(slots=True)
class Tally:
    accepted: int = 0
    duplicate: int = 0
    rejected: list[dict[str, object]] = field(default_factory=list)
    # The log end each partition must reach for every accepted event to show in queries.
    ends: dict[int, int] = field(default_factory=dict)


def read_events(path: str) -> Iterator[tuple[int, pb.Event | str]]:
    """Yield (line number, event) or (line number, why the line is not an event)."""
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    with stream:
        for n, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                yield n, json_format.Parse(line, pb.Event())
            except (json_format.ParseError, UnicodeDecodeError) as e:
                yield n, f"not a duhub.v1.Event in canonical JSON: {e}"


def _send(stub: ingest_pb2_grpc.IngestServiceStub, events: list[pb.Event]) -> ipb.PublishResponse:
    # Retrying is safe: the hub answers DUPLICATE for what it already accepted.
    delay = 0.2
    for attempt in range(RETRIES):
        try:
            return stub.Publish(ipb.PublishRequest(events=events), timeout=60)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == RETRIES - 1:  # type: ignore[attr-defined]
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def publish(path: str, address: str) -> Tally:
    tally = Tally()
    stub = ingest_pb2_grpc.IngestServiceStub(client.channel(address))
    batch: list[tuple[int, pb.Event]] = []

    def flush() -> None:
        if not batch:
            return
        resp = _send(stub, [e for _, e in batch])
        for (line, _), r in zip(batch, resp.results, strict=True):
            if r.result == ipb.RESULT_ACCEPTED:
                tally.accepted += 1
                tally.ends[r.partition] = max(tally.ends.get(r.partition, 0), r.offset + 1)
            elif r.result == ipb.RESULT_DUPLICATE:
                tally.duplicate += 1
            else:
                tally.rejected.append(
                    {"line": line, "event_id": r.event_id, "field": r.field, "reason": r.reason}
                )
        batch.clear()

    for line, item in read_events(path):
        if isinstance(item, str):
            tally.rejected.append({"line": line, "event_id": "", "field": "", "reason": item})
            continue
        batch.append((line, item))
        if len(batch) >= BATCH:
            flush()
    flush()
    tally.rejected.sort(key=lambda r: r["line"])  # type: ignore[arg-type, return-value]
    return tally


def wait_visible(address: str, ends: dict[int, int], timeout: float) -> bool | None:
    """Wait until the read model has applied every accepted event; False on time-out, None
    when the address serves no queries (a lone ingest) and so cannot tell."""
    stub = query_pb2_grpc.QueryServiceStub(client.channel(address))
    deadline = time.monotonic() + timeout
    while True:
        try:
            progress = stub.GetProgress(qpb.GetProgressRequest(), timeout=10)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
                return None
            raise
        applied = {p.partition: p.applied for p in progress.partitions}
        if all(applied.get(p, 0) >= end for p, end in ends.items()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def run(path: str, address: str, as_json: bool, wait: float = 30.0) -> int:
    try:
        tally = publish(path, address)
        visible = wait_visible(address, tally.ends, wait) if wait > 0 and tally.ends else None
    except OSError as e:
        client.fail(f"FILE: cannot read {path}: {e}", client.EXIT_USAGE)
    except grpc.RpcError as e:
        client.fail_rpc(e, address)
    if as_json:
        print(
            json.dumps(
                {
                    "accepted": tally.accepted,
                    "duplicate": tally.duplicate,
                    "rejected": len(tally.rejected),
                    "visible": visible,
                    "rejections": tally.rejected,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(
            f"{path}: {tally.accepted} accepted, {tally.duplicate} duplicate, "
            f"{len(tally.rejected)} rejected"
        )
        if visible is True:
            print("  all accepted events are in the figures")
        elif visible is False:
            print(f"  accepted events are durable; figures not caught up after {wait:g} s")
        for r in tally.rejected:
            who = f" ({r['event_id']})" if r["event_id"] else ""
            print(f"  line {r['line']}{who}: {r['reason']}")
    return client.EXIT_REJECTED if tally.rejected else client.EXIT_OK
