"""The log's disk full: publishers are told so, the hub says it once per outage (no traceback
per refused batch), and a start on a full disk says no space is left, not "disk I/O error".

The embedded log's full disk is an OSError(ENOSPC) raised at its file write (os.write of the
log's descriptor only) and an empty statvfs: a real ENOSPC needs a small mount, which CI
lacks (RLIMIT_FSIZE gives EFBIG, another error). Checked by hand on a 6 MB tmpfs."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health
from sqlalchemy.exc import OperationalError

import duhub.diskfull
import duhub.log.embedded as embedded
from duhub.bootstrap import load_reference, watch_health
from duhub.cli.startup import failure
from duhub.health import log_check
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel.engine import open_engine
from duhub.v1 import ingest_pb2 as ipb
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor, NotReady
from services.ingest.service import IngestServicer
from tests.unit.builders import YIDU, YIDU_T1, kinds, visit


class Aborted(Exception):
    pass


class Context:
    """What IngestServicer asks of a grpc.ServicerContext, on a hub without credentials."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)

    def set_trailing_metadata(self, _metadata: object) -> None:
        pass

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def auth_context(self) -> dict:  # type: ignore[type-arg]
        return {}

    def invocation_metadata(self) -> tuple:  # type: ignore[type-arg]
        return ()


def _full_disk(monkeypatch: pytest.MonkeyPatch, log_: EmbeddedLog) -> list[bool]:
    """Fail the log's file writes ENOSPC while the returned flag's first item is True."""
    full = [True]
    write = os.write

    def write_or_fail(fd: int, data: bytes) -> int:
        writer = log_._writer
        if full[0] and writer is not None and fd == writer.fileno():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, data)

    monkeypatch.setattr(embedded.os, "write", write_or_fail)
    return full


def _publish(servicer: IngestServicer, n: int) -> Context:
    ctx = Context()
    events = [visit(YIDU_T1, event_id=f"v{n}", source=YIDU, seq=n)]
    try:
        servicer.Publish(ipb.PublishRequest(events=events), ctx)
    except Aborted:
        pass
    return ctx


def test_a_full_log_disk_is_answered_so_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_ = EmbeddedLog(tmp_path)
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    tailer = LogTailer(log_, engine)
    ingestor = Ingestor(log_, engine)
    servicer = IngestServicer(ingestor)
    try:
        load_reference(ingestor, engine)
        tailer.catch_up()
        full = _full_disk(monkeypatch, log_)
        caplog.set_level(logging.INFO, logger="services.ingest.service")
        for n in range(1, 5):  # four refused batches, the read model caught up between
            ctx = _publish(servicer, n)
            assert ctx.code == grpc.StatusCode.UNAVAILABLE
            assert ctx.details == "the log's disk is full (No space left on device); retry later"
            tailer.catch_up()
            assert ingestor.ready.wait(10)
        said = [r for r in caplog.records if r.name == "services.ingest.service"]
        assert len(said) == 1 and said[0].exc_info is None
        assert "the log's disk is full (No space left on device)" in said[0].getMessage()
        full[0] = False
        assert _publish(servicer, 5).code is None
        again = [r.getMessage() for r in caplog.records if r.name == "services.ingest.service"]
        assert len(again) == 2 and again[1].startswith("appending again")
    finally:
        log_.close()
        engine.dispose()


def test_health_says_the_logs_disk_is_full_and_ingest_refuses_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_ = EmbeddedLog(tmp_path)
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    ingestor = Ingestor(log_, engine)
    statvfs = os.statvfs

    def no_room(path: object) -> object:
        return SimpleNamespace(f_bavail=0, f_frsize=statvfs(path).f_frsize)

    monkeypatch.setattr(embedded.os, "statvfs", no_room)
    caplog.set_level(logging.INFO, logger="duhub.health")
    monitor = watch_health(health.HealthServicer(), {"": [log_check(log_)]}, ingestor)
    try:
        with pytest.raises(NotReady, match=r"^the log's disk is full; retry later$"):
            ingestor.publish([visit(YIDU_T1, event_id="v1", source=YIDU, seq=1)])
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [
            "health: the log's disk is full (OSError: [Errno 28] log: no space left on the "
            f"device holding {log_.path})"
        ]
        monkeypatch.setattr(embedded.os, "statvfs", statvfs)
        monitor.probe_once()
        assert ingestor.full == "" and ingestor.unreachable == ""
        assert kinds(ingestor.publish([visit(YIDU_T1, event_id="v1", source=YIDU, seq=1)]))
        assert [r.getMessage() for r in caplog.records][1:] == [
            "health: the log's disk has room again"
        ]
    finally:
        monitor.stop()
        log_.close()
        engine.dispose()


def test_a_start_on_a_full_disk_says_no_space_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What SQLite says when a full disk stops it creating its files.
    e = OperationalError("PRAGMA journal_mode=WAL", {}, sqlite3.OperationalError("disk I/O error"))
    url = f"sqlite:///{tmp_path / 'readmodel.db'}"
    statvfs = os.statvfs
    monkeypatch.setattr(
        duhub.diskfull.os,
        "statvfs",
        lambda p: SimpleNamespace(f_bavail=0, f_frsize=statvfs(p).f_frsize),
    )
    assert failure(e, url, str(tmp_path)) == (
        f"--db: cannot open {url}: no space left on the device holding "
        f"{tmp_path / 'readmodel.db'} (SQLite: disk I/O error)"
    )
    monkeypatch.setattr(duhub.diskfull.os, "statvfs", statvfs)  # room: SQLite's words alone
    assert failure(e, url, str(tmp_path)) == f"--db: cannot open {url}: disk I/O error"
