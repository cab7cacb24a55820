"""Structured logs, health that follows its probes, and the metrics interceptor."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

from grpc_health.v1 import health, health_pb2

from duhub.health import Check, HealthMonitor, flag_check
from duhub.logs import JsonFormatter
from duhub.metrics import LagCollector, RolesView, hidden_of, observe_applied, observe_publish
from duhub.v1 import ingest_pb2 as ipb
from services.ingest.ingestor import summarize


def test_json_logs_are_one_object_per_line_with_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("duhub.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("append failed for %s", "420581", extra={"partition": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("with a traceback")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "duhub.test.json"
    assert first["message"] == "append failed for 420581" and first["partition"] == 3
    assert first["time"].endswith("Z")
    assert "ValueError: boom" in second["exc"]


def test_health_follows_the_probes() -> None:
    servicer = health.HealthServicer()
    db_up = threading.Event()
    db_up.set()
    changes: list[tuple[str, bool]] = []

    def status(service: str) -> int:
        req = health_pb2.HealthCheckRequest(service=service)
        return servicer.Check(req, None).status

    monitor = HealthMonitor(
        servicer,
        {"": [flag_check("read model", db_up)], "q": [flag_check("read model", db_up)]},
        on_change=lambda name, ok: changes.append((name, ok)),
    )
    monitor.probe_once()
    assert status("q") == health_pb2.HealthCheckResponse.SERVING
    db_up.clear()
    monitor.probe_once()
    assert status("q") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert status("") == health_pb2.HealthCheckResponse.NOT_SERVING
    db_up.set()
    monitor.probe_once()
    assert status("q") == health_pb2.HealthCheckResponse.SERVING
    assert changes == [("read model", True), ("read model", False), ("read model", True)]


def test_ingest_catching_up_is_logged_as_such_not_as_a_dependency_back(caplog) -> None:  # type: ignore[no-untyped-def]
    # "ready" is ingest's "caught up with the log", no dependency. Before, a `duhub serve
    # ingest` that had caught up logged "WARNING health: ready is reachable again".
    caught_up = threading.Event()
    monitor = HealthMonitor(health.HealthServicer(), {"": [flag_check("ready", caught_up)]})
    with caplog.at_level(logging.INFO, logger="duhub.health"):
        monitor.probe_once()
        caught_up.set()
        monitor.probe_once()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert not any("reachable" in m for _, m in said), said
    assert ("INFO", "health: caught up with the log: serving") in said


def test_a_probe_that_raises_anything_means_not_serving() -> None:
    servicer = health.HealthServicer()

    def broken() -> None:
        raise TimeoutError("no answer")

    HealthMonitor(servicer, {"": [Check("log", broken)]}).probe_once()
    req = health_pb2.HealthCheckRequest(service="")
    assert servicer.Check(req, None).status == health_pb2.HealthCheckResponse.NOT_SERVING


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_publish_answers_and_applied_records_are_counted() -> None:
    before = _sample("duhub_ingest_rejections_total", field="seq")
    accepted = _sample("duhub_ingest_events_total", result="accepted")
    response = summarize(  # as ingest answers: the counts come with the results
        [
            ipb.EventResult(event_id="a", result=ipb.RESULT_ACCEPTED),
            ipb.EventResult(event_id="b", result=ipb.RESULT_REJECTED, field="seq", reason="x"),
        ]
    )
    observe_publish(response, 0.01)
    assert _sample("duhub_ingest_rejections_total", field="seq") == before + 1
    assert _sample("duhub_ingest_events_total", result="accepted") == accepted + 1
    applied = _sample("duhub_aggregate_applied_total")
    observe_applied(5, [1])
    assert _sample("duhub_aggregate_applied_total") == applied + 5


def test_a_scrape_naming_series_gets_none_of_another_role() -> None:
    # `?name[]=…` narrows what /metrics serves (prometheus_client), never widens it: a query
    # server asked for ingest's series has none (tests/e2e/test_observability.py: the rest).
    from prometheus_client import REGISTRY, generate_latest

    observe_publish(summarize([ipb.EventResult(event_id="a", result=ipb.RESULT_ACCEPTED)]), 0.01)
    names = ["duhub_ingest_events_total", "duhub_query_seconds_count"]
    query = RolesView(REGISTRY, hidden_of(["query"])).restricted_registry(names)
    assert b"duhub_ingest" not in generate_latest(query)
    ingest = RolesView(REGISTRY, hidden_of(["ingest"])).restricted_registry(names)
    assert b'duhub_ingest_events_total{result="accepted"}' in generate_latest(ingest)


def test_lag_is_log_end_minus_applied_and_quiet_when_unreachable() -> None:
    lag = LagCollector(lambda: {0: 10, 1: 4}, lambda: {0: 7})
    (family,) = list(lag.collect())
    assert {s.labels["partition"]: s.value for s in family.samples} == {"0": 3, "1": 4}

    def down() -> dict[int, int]:
        raise ConnectionError("broker down")

    assert list(LagCollector(down, lambda: {}).collect()) == []


def test_lag_of_a_log_that_does_not_answer_does_not_hold_the_scrape() -> None:
    # A broker gone, kafka-python's end_offsets waits its request timeout (305 s): every
    # scrape of /metrics hung that long, so duhub_dependency_up{dependency="log"} 0 was never
    # seen (a private broker stopped under `duhub up --log kafka://…`: curl timed out at 60 s).
    stuck = threading.Event()
    calls: list[int] = []

    def hanging() -> dict[int, int]:
        calls.append(1)
        stuck.wait(30)
        return {0: 10}

    lag = LagCollector(hanging, lambda: {0: 7}, timeout=0.5)
    try:
        for _ in range(3):
            t0 = time.monotonic()
            assert list(lag.collect()) == []
            assert time.monotonic() - t0 < 2
        assert len(calls) == 1  # one measurement at a time: scrapes do not pile up threads
    finally:
        stuck.set()
    deadline = time.monotonic() + 5
    while True:  # the measurement that hung returns: the next scrape measures again
        families = list(lag.collect())
        if families or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    (family,) = families
    assert {s.labels["partition"]: s.value for s in family.samples} == {"0": 3}


def test_rejections_take_one_series_per_field_not_per_list_element(tmp_path) -> None:  # noqa: ANN001
    """A campaign's unknown target at index j was counted under
    `campaign_launched.groups[0].target_unit_ids[j]`: a series per element a client sends (up
    to 100,000 targets per campaign), through the real server's metrics interceptor."""
    import grpc
    from prometheus_client import REGISTRY

    from duhub.bootstrap import Hub, HubConfig
    from duhub.v1 import events_pb2 as pb
    from duhub.v1 import ingest_pb2_grpc
    from tests.unit.builders import campaign, group

    def series() -> dict[str, float]:
        return {
            s.labels["field"]: s.value
            for m in REGISTRY.collect()
            if m.name == "duhub_ingest_rejections"
            for s in m.samples
            if s.name == "duhub_ingest_rejections_total" and "target_unit_ids" in s.labels["field"]
        }

    known = ["420581", "420582", "420583", "420506", "420525"]
    events = []
    for j in range(len(known)):
        targets = list(known)
        targets[j] = f"9{j}"  # one unknown target, at another place each time
        events.append(
            campaign(
                f"card-{j}",
                [group("g", pb.TIER_CITY, *targets)],
                event_id=f"card-{j}",
                source="420500",
                seq=j + 1,
            )
        )
    before = series()
    hub = Hub(HubConfig(tmp_path, listen="127.0.0.1:0", http=""))
    hub.start()
    try:
        with grpc.insecure_channel(hub.address) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            reply = stub.Publish(ipb.PublishRequest(events=events), timeout=30)
    finally:
        hub.stop(grace=0)
    assert reply.rejected == len(known)
    fields = {r.field for r in reply.results}  # the answers name the element at fault
    assert len(fields) == len(known)
    after = series()
    new = {f: after[f] - before.get(f, 0.0) for f in after if after[f] != before.get(f, 0.0)}
    assert new == {"campaign_launched.groups[].target_unit_ids[]": len(known)}


def test_json_logs_stay_json_when_a_thread_or_the_process_dies() -> None:
    """`--log-format json`: what Python prints itself when a thread or the main thread ends
    with an exception (`duhub up`'s aggregator thread re-raises what stopped it) goes out as
    JSON lines too. Before, it was a raw multi-line traceback (15 lines for the aggregator)
    among the JSON records."""
    import subprocess
    import sys

    script = (
        "import threading\n"
        "from duhub.logs import setup_logging\n"
        "setup_logging('json')\n"
        "def die():\n"
        "    raise RuntimeError('batch still conflicts')\n"
        "t = threading.Thread(target=die, name='aggregate')\n"
        "t.start(); t.join()\n"
        "raise SystemExit(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1  # the NameError of `main`: uncaught, as before
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [r["level"] for r in records] == ["critical", "critical"]
    assert "RuntimeError: batch still conflicts" in records[0]["exc"]
    assert records[0]["thread_name"] == "aggregate"
    assert "NameError" in records[1]["exc"]


def test_the_libraries_log_warnings_only_unless_told(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # At INFO, Faust, mode, aiokafka and kafka-python wrote ~100 lines at each start and stop
    # of an aggregate worker; duhub's own lines say what an operator needs.
    from duhub.logs import LIBRARIES, library_level, set_library_level, setup_logging

    root = logging.getLogger()
    kept = (list(root.handlers), root.level, [logging.getLogger(n).level for n in LIBRARIES])
    try:
        setup_logging("text")
        for name in ("faust.worker", "aiokafka.consumer.group_coordinator", "kafka.net.manager"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
            assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
        assert logging.getLogger("services.aggregate.feed").isEnabledFor(logging.INFO)
        assert library_level({}) == logging.WARNING
        assert library_level({"DUHUB_LIBRARY_LOG_LEVEL": ""}) == logging.WARNING
        assert library_level({"DUHUB_LIBRARY_LOG_LEVEL": "info"}) == logging.INFO
        set_library_level(library_level({"DUHUB_LIBRARY_LOG_LEVEL": "DEBUG"}))
        assert logging.getLogger("faust.worker").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:] = kept[0]
        root.setLevel(kept[1])
        for name, level in zip(LIBRARIES, kept[2], strict=True):
            logging.getLogger(name).setLevel(level)


def test_a_bad_library_log_level_stops_a_server_naming_the_variable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.unit.test_ops_cli import duhub_env

    loud = {"DUHUB_LIBRARY_LOG_LEVEL": "loud"}
    done = duhub_env(loud, "up", "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "$DUHUB_LIBRARY_LOG_LEVEL: 'loud' is not a log level" in done.stderr, done.stderr
    assert not (tmp_path / "d").exists()  # nothing made
