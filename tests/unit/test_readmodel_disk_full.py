"""The read model's disk full: the aggregator says so (once, naming the database, and again
when it writes), and health and `duhub_dependency_up` show it is not written. Before
2026-12-06 it logged "read model unreachable (... database or disk is full); retrying" once a
second, everything stayed SERVING and `duhub_dependency_up{dependency="read_model"}` 1.

The full disk is SQLite's `max_page_count` reached: the same SQLITE_FULL ("database or disk
is full") as a full tmpfs gives, without a mount."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from grpc_health.v1 import health, health_pb2
from prometheus_client import REGISTRY
from sqlalchemy import event, text

import services.aggregate.apply as apply_mod
from duhub.diskfull import disk_full, writes_refused
from duhub.health import HealthMonitor, database_check, writes_check
from duhub.readmodel.engine import open_engine
from services.aggregate.apply import BatchApplier
from tests.unit.builders import YIDU, YIDU_T1, hierarchy, visit
from tests.unit.test_apply_waits import record, visits_counted

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _read_model_up() -> float | None:
    return REGISTRY.get_sample_value("duhub_dependency_up", {"dependency": "read_model"})


def _fill(engine):  # type: ignore[no-untyped-def]  # noqa: ANN201
    """Let no connection grow the database past its size now: its 'disk' is full."""
    with engine.connect() as conn:
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()

    def full(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", full)
    engine.dispose()
    return full


def _many_visits(n: int) -> list:  # type: ignore[type-arg]
    return [
        record(0, i, visit(YIDU_T1, event_id=f"v{i}-" + "x" * 100, source=YIDU, seq=10 + i))
        for i in range(n)
    ]


def test_a_full_read_model_is_said_once_shown_in_health_and_caught_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'rm.db'}"
    engine = open_engine(url)
    applier = BatchApplier(engine)
    refs = [record(2, i, e) for i, e in enumerate(hierarchy())]
    applier.apply(refs)
    servicer = health.HealthServicer()
    db = database_check(engine)
    monitor = HealthMonitor(servicer, {"": [db, writes_check(engine)], "query": [db]})

    def status(service: str) -> int:
        return servicer.Check(health_pb2.HealthCheckRequest(service=service), None).status

    monitor.probe_once()
    assert _read_model_up() == 1 and status("") == SERVING
    full = _fill(engine)
    seen: list[tuple[float | None, int, int]] = []

    def sleep(_s: float) -> None:  # a second of the outage: look at health, then go on
        monitor.probe_once()
        seen.append((_read_model_up(), status(""), status("query")))
        if len(seen) == 5:  # room again
            event.remove(engine, "connect", full)
            engine.dispose()

    monkeypatch.setattr(apply_mod.time, "sleep", sleep)
    caplog.set_level(logging.INFO, logger="services.aggregate.apply")
    batch = _many_visits(2000)
    applied = applier.apply(batch)
    assert applied.records == len(batch) and visits_counted(applier) == len(batch)
    # Down for the aggregator, and for the hub as a whole; query still answers from it.
    assert seen == [(0, NOT_SERVING, SERVING)] * 5
    lines = [r.getMessage() for r in caplog.records]
    assert not [m for m in lines if "unreachable" in m]
    said = [m for m in lines if "disk is full" in m]
    assert len(said) == 1 and url in said[0] and "database or disk is full" in said[0]
    again = [m for m in lines if "written again" in m]
    assert len(again) == 1 and url in again[0]
    assert writes_refused(engine) == ""
    monitor.probe_once()
    assert _read_model_up() == 1 and status("") == SERVING


def test_a_full_read_model_is_waited_out_past_the_outage_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, a full disk went through the unreachable database's 600 s limit: the
    # aggregator raised, `duhub up` stopped (ingest with it) and health stayed NOT_SERVING.
    engine = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    applier = BatchApplier(engine)
    applier.apply([record(2, i, e) for i, e in enumerate(hierarchy())])
    full = _fill(engine)
    clock = [1000.0]
    waits = 0

    def sleep(_s: float) -> None:  # each wait a minute of the outage; room after 15
        nonlocal waits
        waits += 1
        clock[0] += 61.0
        if waits == 15:
            event.remove(engine, "connect", full)
            engine.dispose()

    monkeypatch.setattr(apply_mod.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(apply_mod.time, "sleep", sleep)
    batch = _many_visits(2000)
    applied = applier.apply(batch)
    assert waits == 15 and clock[0] - 1000.0 > apply_mod.DB_OUTAGE_LIMIT_S
    assert applied.records == len(batch) and visits_counted(applier) == len(batch)
    assert writes_refused(engine) == ""


def test_a_restart_after_a_long_full_disk_is_waited_out_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full disk's time counted toward the unreachable database's 600 s: after a long full
    # disk the first refused connect (PostgreSQL restarting, after a full WAL or once space
    # was freed) stopped the aggregator, and `duhub up` with it.
    engine = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    applier = BatchApplier(engine)
    applier.apply([record(2, i, e) for i, e in enumerate(hierarchy())])
    full = _fill(engine)

    def away(_dbapi, _record) -> None:  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("unable to open database file")

    clock = [1000.0]
    waits = 0

    def sleep(_s: float) -> None:  # each wait a minute: full for 15, then away for 2
        nonlocal waits
        waits += 1
        clock[0] += 61.0
        if waits == 15:
            event.remove(engine, "connect", full)
            event.listen(engine, "connect", away)
            engine.dispose()
        if waits == 17:
            event.remove(engine, "connect", away)
            engine.dispose()

    monkeypatch.setattr(apply_mod.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(apply_mod.time, "sleep", sleep)
    batch = _many_visits(2000)
    applied = applier.apply(batch)
    assert waits == 17
    assert applied.records == len(batch) and visits_counted(applier) == len(batch)


def test_max_page_count_gives_the_error_a_full_disk_does(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    _fill(engine)
    with pytest.raises(Exception) as caught, engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (x BLOB)"))
        conn.execute(text("INSERT INTO filler VALUES (zeroblob(1000000))"))
    assert "database or disk is full" in str(caught.value) and disk_full(caught.value)
