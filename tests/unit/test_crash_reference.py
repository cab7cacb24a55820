"""A crash in the middle of the hub's first append (the reference hierarchy) must not leave the
hub without part of its hierarchy for good."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
from google.protobuf import json_format

from duhub.bootstrap import Hub, HubConfig, units_registered
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel.writer import read_positions
from duhub.reference import reference_events
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc


def crash_mid_reference(data: Path, whole: int) -> None:
    """Leave `data` as a crash in the middle of the reference's append does: `whole` whole
    frames, a torn one after them, nothing applied (the append was never acknowledged)."""
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    hub.stop(grace=0)
    log = EmbeddedLog(data)
    torn_at = log._positions[whole]
    log.close()
    with open(data / EmbeddedLog.FILE, "r+b") as f:
        f.truncate(torn_at + 40)
    for suffix in ("", "-wal", "-shm"):
        (data / f"readmodel.db{suffix}").unlink(missing_ok=True)


def units_after_catch_up(hub: Hub) -> int:
    """Return the units the read model holds once it applied all the log holds."""
    end = hub.log.end_offsets()
    deadline = time.monotonic() + 30
    while read_positions(hub.engine).get(0, 0) < end[0]:
        assert time.monotonic() < deadline, "the read model never caught up"
        time.sleep(0.05)
    return units_registered(hub.engine)


def test_a_reference_load_cut_short_by_a_crash_is_completed_on_restart(tmp_path: Path) -> None:
    # Before, the next start cut the torn frame and, the log not being empty, loaded no more
    # of the hierarchy, at this start or any later one: 460 of the 1,160 units stayed unknown
    # and every event naming one was rejected ("unknown unit ...: register it first").
    data = tmp_path / "data"
    reference = reference_events()
    crash_mid_reference(data, 700)
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    try:
        assert units_after_catch_up(hub) == len(reference)
        last = reference[-1].org_unit_registered.unit_id
        visit = json_format.ParseDict(
            {
                "eventId": "after-crash-1",
                "source": "420500",
                "seq": 1,
                "occurredAt": "2022-06-01T00:00:00Z",
                "supervisionVisit": {"unitId": last, "area": "ecology"},
            },
            pb.Event(),
        )
        with grpc.insecure_channel(hub.address) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            reply = stub.Publish(ipb.PublishRequest(events=[visit]), timeout=30)
        assert reply.results[0].result == ipb.RESULT_ACCEPTED, reply.results[0].reason
    finally:
        hub.stop(grace=0)
    # Started again, nothing more is loaded: the reference is whole, once.
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    try:
        assert units_after_catch_up(hub) == len(reference)
        assert hub.log.end_offsets()[0] == len(reference) + 1
    finally:
        hub.stop(grace=0)
    assert os.path.exists(data / EmbeddedLog.FILE)
