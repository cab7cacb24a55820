"""`duhub serve ingest` on a new hub opens to clients only once the reference hierarchy is in.

Its start catches up with the log, then loads the reference through the ingestor; the
ingestor took clients' events from the moment it had caught up. A county node publishing in
that window had its events REJECTED for good ("not a registered city or county-level unit"),
and the outbox marked them rejected, though the hub was only starting.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
import pytest

from duhub import bootstrap
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from services.ingest import ingestor
from tests.unit.builders import sanction

YIDU = "420581"


def _publish(address: str, seq: int) -> ipb.PublishResponse:
    with grpc.insecure_channel(address) as channel:
        return ingest_pb2_grpc.IngestServiceStub(channel).Publish(
            ipb.PublishRequest(events=[sanction(YIDU, event_id=f"s{seq}", source=YIDU, seq=seq)]),
            timeout=10,
        )


def test_a_county_publishing_while_the_reference_loads_is_told_to_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = bootstrap.load_reference
    loading, release = threading.Event(), threading.Event()

    def slow_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        loading.set()
        assert release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(bootstrap, "load_reference", slow_load)
    ingest = bootstrap.IngestProcess(bootstrap.HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    ingest.start()
    try:
        address = f"127.0.0.1:{ingest.port}"
        assert loading.wait(30), "the reference load never began"
        with pytest.raises(grpc.RpcError) as refused:
            _publish(address, 1)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "reference" in (refused.value.details() or "")

        release.set()
        for _ in range(100):
            try:
                reply = _publish(address, 1)
                break
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
                threading.Event().wait(0.1)
        else:
            raise AssertionError("ingest never opened after the reference loaded")
        # The refused event took nothing: the same seq is accepted once ingest is open.
        assert [r.result for r in reply.results] == [ipb.RESULT_ACCEPTED]
    finally:
        release.set()
        ingest.stop()


def test_ingest_opens_after_an_unexpected_error_while_it_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library's error of a kind not foreseen (not the database's nor Kafka's) while a
    # server restarts: the catch-up is tried again, not given up with ingest closed for good.
    real_load = bootstrap.load_reference
    failures = []

    def flaky_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(1)
            raise AssertionError("a library's internal check while the server restarts")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(bootstrap, "load_reference", flaky_load)
    ingest = bootstrap.IngestProcess(bootstrap.HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    ingest.start()
    try:
        assert ingest.ingestor.open_to_clients.wait(30), "ingest never opened"
        assert failures == [1] and not ingest.failed.is_set()
        reply = _publish(f"127.0.0.1:{ingest.port}", 1)
        assert [r.result for r in reply.results] == [ipb.RESULT_ACCEPTED]
    finally:
        ingest.stop()


def test_ingest_waiting_for_the_read_model_says_so_not_that_the_reference_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Ingest restarted while no aggregate worker runs: the log holds records the read model
    # has not applied, and ingest waits for them before it opens. It told publishers "ingest
    # is loading the reference hierarchy", which sent an operator looking at the reference
    # instead of at the workers that were down, and its own log said nothing.
    monkeypatch.setattr(ingestor, "SAY_WAITING_AFTER_S", 0.2)
    caplog.set_level(logging.WARNING, logger=ingestor.__name__)
    config = bootstrap.HubConfig(tmp_path / "data", listen="127.0.0.1:0")
    first = bootstrap.IngestProcess(config)
    first.start()
    try:
        assert first.ingestor.open_to_clients.wait(30), "the first ingest never opened"
    finally:
        first.stop()
    # Nothing applied the reference the first one appended: the second one waits for it.
    before = set(threading.enumerate())
    again = bootstrap.IngestProcess(config)
    again.start()
    try:
        with pytest.raises(grpc.RpcError) as refused:
            _publish(f"127.0.0.1:{again.port}", 1)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        details = refused.value.details() or ""
        assert "reference" not in details, details
        assert "read model" in details and "aggregate workers" in details, details
        for _ in range(100):
            if any("are the aggregate workers running" in r.getMessage() for r in caplog.records):
                break
            threading.Event().wait(0.05)
        said = [r.getMessage() for r in caplog.records if r.name == ingestor.__name__]
        assert any(
            "ingest waits for the read model" in m and "partition 0 at 0, the log at" in m
            for m in said
        ), said
    finally:
        again.stop()
    # Stopped, it waits no more: its catch-up retried on the closed log every second, a
    # traceback each, for as long as the process lived.
    for _ in range(100):
        waiting = [t for t in set(threading.enumerate()) - before if t.name == "catch-up"]
        if not any(t.is_alive() for t in waiting):
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError("the stopped ingest's catch-up still runs")
