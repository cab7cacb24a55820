"""`duhub up --metrics … --log-format json`: Prometheus metrics, JSON logs and health."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path
from subprocess import CompletedProcess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.hubproc import HubProcess, duhub, serve

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


def publish_quickstart(address: str, tmp_path: Path, *more: str) -> CompletedProcess[str]:
    """The README's quickstart file, published through an outbox in `tmp_path`: its one
    rejected line on purpose makes the exit 1."""
    outbox = str(tmp_path / "outbox.db")
    return duhub(
        address, "publish", str(ROOT / "examples/quickstart.jsonl"), "--outbox", outbox, *more
    )


def test_metrics_json_logs_and_health(tmp_path: Path) -> None:
    hub = HubProcess(
        tmp_path / "data", "--metrics", "127.0.0.1:0", "--log-format", "json", "--http", "off"
    )
    try:
        url = hub.find(METRICS).group(1)
        done = publish_quickstart(hub.address, tmp_path)
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


def test_ingest_serves_the_lag_while_no_aggregate_worker_runs(tmp_path: Path) -> None:
    # The lag matters most when every worker is down, and then no worker serves it: ingest,
    # which has the log and the read model, serves it too. Before, `duhub serve ingest
    # --metrics` had no duhub_aggregate_lag at all.
    data = str(tmp_path / "data")
    ingest = serve("ingest", "--data-dir", data, "--metrics", "127.0.0.1:0")
    worker = None
    try:
        url = ingest.find(METRICS).group(1)
        done = publish_quickstart(ingest.address, tmp_path, "--wait", "0")
        assert done.returncode == 1, done.stderr
        lag = 'duhub_aggregate_lag{partition="0"}'
        m = scrape(url)
        # The reference hierarchy and the 7 accepted events, none applied: no worker runs.
        assert m.get(lag, 0) >= 7, m
        worker = serve("aggregate", "--data-dir", data)
        deadline = time.monotonic() + 60
        while scrape(url).get(lag) != 0:
            assert time.monotonic() < deadline, scrape(url)
            time.sleep(0.2)
    finally:
        if worker is not None:
            worker.stop()
        ingest.stop()


def test_an_aggregate_worker_serves_whether_its_dependencies_answer(tmp_path: Path) -> None:
    # Before, a worker's scrape had the duhub_dependency_up family with no sample.
    worker = serve("aggregate", "--data-dir", str(tmp_path / "data"), "--metrics", "127.0.0.1:0")
    try:
        url = worker.find(METRICS).group(1)  # printed before the worker opens its log
        deadline = time.monotonic() + 20
        while 'duhub_dependency_up{dependency="log"}' not in (m := scrape(url)):
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
        assert m['duhub_dependency_up{dependency="log"}'] == 1, m
        assert m['duhub_dependency_up{dependency="read_model"}'] == 1, m
    finally:
        worker.stop()


def families(url: str) -> set[str]:
    """Return the names of the duhub metric families a scrape of `url` holds."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE duhub_")}


INGEST_ONLY = {
    "duhub_ingest_events_total",
    "duhub_ingest_rejections_total",
    "duhub_ingest_requests_total",
    "duhub_ingest_batch_seconds",
}
AGGREGATE_ONLY = {"duhub_aggregate_applied_total", "duhub_append_to_readmodel_seconds"}
QUERY_ONLY = {"duhub_query_seconds"}
EVERY_PROCESS = {"duhub_dependency_up", "duhub_build_info"}


def test_each_service_serves_the_metrics_of_its_own_role_only(tmp_path: Path) -> None:
    # Before, every process served every role's metrics, the others' at 0: a query server's
    # duhub_ingest_batch_seconds_count 0, an ingest's duhub_aggregate_applied_total 0, a
    # worker's duhub_query_seconds, all read by a scraper as series of that process.
    data = str(tmp_path / "data")
    served = {}
    procs = []
    try:
        for role in ("ingest", "aggregate", "query"):
            procs.append(serve(role, "--data-dir", data, "--metrics", "127.0.0.1:0"))
            served[role] = families(procs[-1].find(METRICS).group(1))
        ingest, aggregate, query = served["ingest"], served["aggregate"], served["query"]
        assert INGEST_ONLY | EVERY_PROCESS <= ingest, ingest
        assert not (AGGREGATE_ONLY | QUERY_ONLY) & ingest, ingest
        assert AGGREGATE_ONLY | EVERY_PROCESS <= aggregate, aggregate
        assert not (INGEST_ONLY | QUERY_ONLY | {"duhub_calls_refused_total"}) & aggregate
        assert QUERY_ONLY | EVERY_PROCESS <= query, query
        assert not (INGEST_ONLY | AGGREGATE_ONLY) & query, query
    finally:
        for proc in procs:
            proc.stop()


def test_the_hub_says_it_stops_and_why(tmp_path: Path) -> None:
    """`duhub up` stopped logs a line naming the signal, as the services apart and the worker
    do: before 2026-12-07 it ended without one, a stop not to be told from a kill."""
    hub = HubProcess(tmp_path / "hub")
    assert hub.stop() == 0
    said = hub.find(re.compile(r"hub stops \((\w+)\): ran for (\d+:\d\d:\d\d)"))
    assert said.group(1) == "SIGTERM", said.group(0)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_aggregate_service_on_the_embedded_log_says_it_stops_and_why(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """`duhub serve aggregate` on the embedded log logs the line ingest, query and the Kafka
    worker log as they stop: before 2026-12-07 it ended without one."""
    aggregate = serve("aggregate", "--data-dir", str(tmp_path / "data"))
    try:
        aggregate.proc.send_signal(signum)
        assert aggregate.proc.wait(timeout=30) == 0, "".join(aggregate.output)
        said = aggregate.find(
            re.compile(r"INFO \S+ aggregate service stops \((\w+)\): ran for \d+:\d\d:\d\d$")
        )
        assert said.group(1) == signum.name, said.group(0)
    finally:
        aggregate.stop()


def test_the_aggregate_service_on_the_embedded_log_ends_when_its_aggregator_stops(
    tmp_path: Path,
) -> None:
    """A batch its read model refuses stops the aggregator loudly, never past the batch: the
    service then ends, exit 1, saying why, so a supervisor starts it again, as `duhub up`
    ends. Before, it stayed up applying nothing, its process alive, until stopped by hand."""
    data = tmp_path / "data"
    ingest = serve("ingest", "--data-dir", str(data), "--metrics", "off")
    aggregate = serve("aggregate", "--data-dir", str(data), "--metrics", "off")
    try:
        deadline = time.monotonic() + 30
        while not applied_units(data / "readmodel.db"):  # the reference ingest loads
            assert time.monotonic() < deadline, "".join(aggregate.output)
            time.sleep(0.2)
        # Only the aggregator writes rollups: every try of the next batch is refused (a lost
        # table is waited out as an outage instead, for 10 minutes).
        with sqlite3.connect(data / "readmodel.db") as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON rollups "
                "BEGIN SELECT RAISE(ABORT, 'rollups refused'); END"
            )
        done = publish_quickstart(ingest.address, tmp_path, "--wait", "0")
        assert done.returncode == 1, done.stderr  # its one rejected line
        # Its tries (20, a second apart at most) and no more.
        assert aggregate.proc.wait(timeout=90) == 1, "".join(aggregate.output)
        aggregate.find(re.compile(r"ERROR \S+ the aggregator stopped: batch still conflicts"))
        aggregate.find(re.compile(r"aggregate service stops \(its aggregator failed\): ran for"))
    finally:
        aggregate.stop()
        ingest.stop()


def applied_units(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    with sqlite3.connect(db_path) as db:
        try:
            return db.execute("SELECT count(*) FROM units").fetchone()[0]
        except sqlite3.OperationalError:  # not made yet
            return 0
