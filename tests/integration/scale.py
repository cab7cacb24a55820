"""Helpers for tests that run the services apart against real Kafka and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc
from google.protobuf import json_format

from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc, query_pb2_grpc
from duhub.v1 import query_pb2 as qpb
from tests.e2e.hubproc import duhub_json

COUNTIES = [
    "420502",
    "420503",
    "420504",
    "420505",
    "420506",
    "420525",
    "420526",
    "420527",
    "420528",
    "420529",
    "420581",
    "420582",
    "420583",
    "420500-L01",
]


def accountability(source: str, seq: int, persons: int) -> pb.Event:
    return json_format.ParseDict(
        {
            "eventId": f"{source}-{seq}",
            "source": source,
            "seq": seq,
            "occurredAt": "2022-05-01T08:00:00Z",
            "accountabilityImposed": {"unitId": source, "area": "epidemic", "persons": persons},
        },
        pb.Event(),
    )


def publish(address: str, events: Sequence[pb.Event], timeout: float = 60) -> list[ipb.EventResult]:
    """Publish, retrying while ingest is not ready (UNAVAILABLE); return the results."""
    stub = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(address))
    deadline = time.monotonic() + timeout
    while True:
        try:
            return list(stub.Publish(ipb.PublishRequest(events=events), timeout=30).results)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_applied(query_address: str, ends: dict[int, int], timeout: float = 120) -> None:
    """Wait until the read model applied every partition up to `ends`."""
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(query_address))
    deadline = time.monotonic() + timeout
    while True:
        progress = stub.GetProgress(qpb.GetProgressRequest(), timeout=10)
        applied = {p.partition: p.applied for p in progress.partitions}
        if all(applied.get(p, 0) >= o for p, o in ends.items()):
            return
        assert time.monotonic() < deadline, f"not applied in time: {applied} < {ends}"
        time.sleep(0.1)


def persons_by_unit(query_address: str) -> dict[str, int]:
    """Return accountability_persons by unit below the city, as `duhub query stats` gives them."""
    by_unit = duhub_json(
        query_address,
        "query",
        "stats",
        "--metric",
        "accountability_persons",
        "--group-by",
        "unit",
    )
    return {r["key"]: int(r["values"]["accountability_persons"]) for r in by_unit["rows"]}


def ends_of(results: Sequence[ipb.EventResult]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for r in results:
        if r.result == ipb.RESULT_ACCEPTED:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    return ends
