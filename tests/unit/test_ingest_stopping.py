"""A publish still running when the hub stops (past the server's grace, the log closed under
it) is answered UNAVAILABLE as the hub's, which the outbox retries, and logs no traceback:
before, the handler raised RuntimeError('log is closed'), which gRPC logged as
'Exception calling application' at every such stop."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.health import hub_answered
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from tests.unit.builders import visit


def test_a_publish_after_the_log_closed_is_unavailable_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(HubConfig(tmp_path, listen="127.0.0.1:0", http=""))
    hub.start()
    try:
        with grpc.insecure_channel(hub.address) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            first = visit("420581101", event_id="v1", source="420581", seq=1)
            assert stub.Publish(ipb.PublishRequest(events=[first]), timeout=30).accepted == 1
            size = hub.log.path.stat().st_size
            hub.tailer.stop()  # as stop() does once the server's grace is over
            hub.log.close()
            second = visit("420581101", event_id="v2", source="420581", seq=2)
            with caplog.at_level(logging.WARNING):
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Publish(ipb.PublishRequest(events=[second]), timeout=30)
    finally:
        hub.stop(grace=0)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert hub_answered(refused.value), "a hub's UNAVAILABLE, for the outbox to retry"
    assert "stopping" in refused.value.details()
    assert hub.log.path.stat().st_size == size, "nothing appended"
    assert [r.getMessage() for r in caplog.records] == []
