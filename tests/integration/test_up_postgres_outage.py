"""`duhub up --db postgresql://…` (the embedded log, the read model on PostgreSQL) through a
restart of PostgreSQL: health of each service name goes NOT_SERVING and back to SERVING,
publishing is refused while it is down and counted once after, the process stays up."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from tests.e2e.hubproc import HubProcess, stat_values
from tests.infra import postgres_url
from tests.integration.chaos import private_postgres, wait_health
from tests.unit.builders import talk

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NAMES = ("", "duhub.v1.IngestService", "duhub.v1.QueryService")
METRICS = re.compile(r"^  metrics: {16}(http://\S+/metrics)$")


def publish(address: str, events: list[pb.Event]) -> ipb.PublishResponse:
    with grpc.insecure_channel(address) as channel:
        return ingest_pb2_grpc.IngestServiceStub(channel).Publish(
            ipb.PublishRequest(events=events), timeout=30
        )


def gauge(url: str, line_start: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def test_up_on_postgres_rides_out_a_restart(tmp_path: Path) -> None:
    postgres_url()  # skips without the test PostgreSQL
    with private_postgres() as pg:
        hub = HubProcess(
            tmp_path / "data",
            "--db",
            pg.url,
            "--metrics",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--http",
            "off",
        )
        try:
            url = hub.find(METRICS).group(1)
            for name in NAMES:
                wait_health(hub.address, name, "SERVING", timeout=30)
            first = talk("420581", 3, pb.TALK_KIND_OTHER, event_id="t1", source="420500", seq=1)
            assert publish(hub.address, [first]).accepted == 1

            pg.down()
            for name in NAMES:
                wait_health(hub.address, name, "NOT_SERVING", timeout=20)
            assert gauge(url, 'duhub_dependency_up{dependency="read_model"}') == 0
            second = talk("420581", 4, pb.TALK_KIND_OTHER, event_id="t2", source="420500", seq=2)
            with pytest.raises(grpc.RpcError) as refused:
                publish(hub.address, [second])
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            time.sleep(3.0)  # the aggregator meets the outage too

            pg.up()
            for name in NAMES:
                wait_health(hub.address, name, "SERVING", timeout=60)
            assert hub.proc.poll() is None, "duhub up exited:\n" + "".join(hub.output)
            assert publish(hub.address, [second]).accepted == 1
            deadline = time.monotonic() + 30
            while stat_values(hub.address, "--metric", "talk_persons")["talk_persons"] != 7:
                assert time.monotonic() < deadline, "the second event was never counted"
                time.sleep(0.5)
            while gauge(url, 'duhub_aggregate_lag{partition="0"}') != 0:
                assert time.monotonic() < deadline, "lag never went back to 0"
                time.sleep(0.5)
            assert gauge(url, 'duhub_dependency_up{dependency="read_model"}') == 1
            assert gauge(url, 'duhub_ingest_events_total{result="accepted"}') == 2
        finally:
            code = hub.stop()
        assert code == 0, "".join(hub.output)
        for line in hub.output:
            if line.startswith("{"):
                json.loads(line)
