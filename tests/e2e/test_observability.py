"""`duhub up --metrics … --log-format json`: Prometheus metrics, JSON logs and health."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.hubproc import HubProcess, duhub

ROOT = Path(__file__).resolve().parents[2]
METRICS = re.compile(r"^  metrics: {16}(http://\S+/metrics)$")


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("duhub_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_json_logs_and_health(tmp_path: Path) -> None:
    hub = HubProcess(
        tmp_path / "data", "--metrics", "127.0.0.1:0", "--log-format", "json", "--http", "off"
    )
    try:
        url = hub.find(METRICS).group(1)
        done = duhub(
            hub.address,
            "publish",
            str(ROOT / "examples/quickstart.jsonl"),
            "--outbox",
            str(tmp_path / "outbox.db"),
        )
        assert done.returncode == 1, done.stderr  # one rejection on purpose
        deadline = time.monotonic() + 20
        while True:
            m = scrape(url)
            if m.get('duhub_aggregate_lag{partition="0"}') == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert m['duhub_ingest_events_total{result="accepted"}'] == 7
        assert m['duhub_ingest_events_total{result="duplicate"}'] == 1
        assert m['duhub_ingest_rejections_total{field="sanction_imposed.unit_id"}'] == 1
        assert m['duhub_aggregate_lag{partition="0"}'] == 0
        assert m["duhub_aggregate_applied_total"] >= 7
        assert m["duhub_append_to_readmodel_seconds_count"] >= 7
        assert m["duhub_ingest_batch_seconds_count"] >= 1
        assert m['duhub_query_seconds_count{rpc="GetProgress"}'] >= 1
        assert m['duhub_dependency_up{dependency="log"}'] == 1
        assert m['duhub_dependency_up{dependency="read_model"}'] == 1

        stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(hub.address))
        for service in ("", "duhub.v1.IngestService", "duhub.v1.QueryService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    finally:
        hub.stop()
    logs = [json.loads(line) for line in hub.output if line.startswith("{")]
    assert logs, "no JSON log lines"
    assert all({"time", "level", "logger", "message"} <= set(e) for e in logs)
    assert any(e["message"].startswith("read model caught up") for e in logs)
