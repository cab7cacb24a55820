"""kill -9 right after ACCEPTED answers: nothing acknowledged is lost, nothing counts twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
from google.protobuf import json_format

from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from tests.e2e.hubproc import HubProcess, stat_values

BATCH = 50


def visit(seq: int) -> pb.Event:
    return json_format.ParseDict(
        {
            "eventId": f"crash-{seq}",
            "source": "420581",
            "seq": seq,
            "occurredAt": "2022-06-01T08:00:00Z",
            "supervisionVisit": {"unitId": "420581101", "area": "ecology"},
        },
        pb.Event(),
    )


def test_kill9_loses_no_accepted_event_and_counts_none_twice(
    tmp_path: Path, backend: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    hub = HubProcess(data, *backend)
    stub = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(hub.address))
    acked: set[str] = set()
    sent = 0
    stop = threading.Event()

    def publisher() -> None:
        nonlocal sent
        while not stop.is_set():
            events = [visit(sent + i + 1) for i in range(BATCH)]
            sent += BATCH
            try:
                reply = stub.Publish(ipb.PublishRequest(events=events), timeout=10)
            except grpc.RpcError:
                return  # the hub died mid-call: this batch may or may not be in the log
            acked.update(r.event_id for r in reply.results if r.result == ipb.RESULT_ACCEPTED)

    thread = threading.Thread(target=publisher)
    thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20 * BATCH and time.monotonic() < deadline:
        time.sleep(0.005)
    hub.kill9()  # while the publisher is still sending
    stop.set()
    thread.join(timeout=30)
    assert len(acked) >= 20 * BATCH

    hub = HubProcess(data, *backend)
    try:
        in_log = stat_values(hub.address, "--metric", "visits")["visits"]
        assert len(acked) <= in_log <= sent

        # Everything acknowledged is there; everything sent, once more, lands exactly once.
        stub = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(hub.address))
        again = [visit(i) for i in range(1, sent + 1)]
        results = []
        for i in range(0, len(again), 500):
            results += stub.Publish(
                ipb.PublishRequest(events=again[i : i + 500]), timeout=30
            ).results
        duplicates = {r.event_id for r in results if r.result == ipb.RESULT_DUPLICATE}
        assert acked <= duplicates
        assert len(duplicates) == in_log
        assert all(r.result != ipb.RESULT_REJECTED for r in results)
        deadline = time.monotonic() + 30
        while stat_values(hub.address, "--metric", "visits")["visits"] < sent:
            assert time.monotonic() < deadline, "the figures never caught up"
            time.sleep(0.1)
        time.sleep(0.3)  # and nothing more arrives later
        assert stat_values(hub.address, "--metric", "visits")["visits"] == sent
    finally:
        hub.stop()
