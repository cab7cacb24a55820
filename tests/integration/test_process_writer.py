"""SQLite written behind by a child process (a long replay): the read model it builds is the one
applying in turn builds; a write that fails, or a writer process that dies, leaves the batch to
be applied again by the parent, and nothing counts twice."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bench.events import stored_records
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel.digest import digest, figure_diffs, table_digests
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import read_positions
from services.aggregate import embedded
from services.aggregate import replay as replay_module
from services.aggregate.apply import Applied, BatchApplier
from services.aggregate.embedded import LogTailer
from services.aggregate.process_writer import ProcessWriter
from services.aggregate.write_behind import WriteBehind
from tests.integration import test_write_behind as in_postgresql

apply_all = in_postgresql.apply_all
records = in_postgresql.records  # the same stream over 4 partitions (a fixture)

LOGGER = "services.aggregate.write_behind"


def sqlite(tmp_path: Path, name: str):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / name}.db"
    return url, open_engine(url)


@pytest.fixture
def models(records, tmp_path) -> Iterator[tuple[Engine, str, Engine]]:
    """(the read model the records give applied in turn, a fresh target's URL, its engine)."""
    _, reference = sqlite(tmp_path, "reference")
    url, target = sqlite(tmp_path, "target")
    try:
        apply_all(BatchApplier(reference), records)
        yield reference, url, target
    finally:
        reference.dispose()
        target.dispose()


def assert_same_read_model(engine: Engine, reference: Engine, writer: WriteBehind) -> None:
    assert writer.applier.positions == read_positions(engine)
    assert digest(table_digests(engine)) == digest(table_digests(reference)), figure_diffs(
        reference, engine
    )


def test_a_writer_process_builds_the_read_model_applying_in_turn_builds(
    records, models, caplog
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reference, url, engine = models
    told: list[Applied] = []
    writer = WriteBehind(BatchApplier(engine), told.append, process=ProcessWriter(url))
    assert writer.overlapping
    apply_all(writer, records)
    writer.close()
    # Every record was committed by the child (none applied again by the parent).
    assert "failed" not in caplog.text
    assert sum(t.records for t in told) == len(records)
    assert sum(t.summary.counted for t in told) > 0  # the child's summaries came back
    assert_same_read_model(engine, reference, writer)


def test_a_write_the_child_could_not_commit_is_applied_again_once(records, models, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reference, url, engine = models
    writer = WriteBehind(BatchApplier(engine), process=ProcessWriter(url))
    # Another applier commits the first records before the child's writes land: the child's
    # compare-and-set of the positions fails for the batches over them.
    apply_all(BatchApplier(engine), records[:1500])
    apply_all(writer, records)
    writer.close()
    assert "a batch written behind failed (PositionConflict" in caplog.text
    assert_same_read_model(engine, reference, writer)


def test_when_the_writer_process_dies_the_parent_writes_the_rest(records, models, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    reference, url, engine = models
    process = ProcessWriter(url)
    writer = WriteBehind(BatchApplier(engine), process=process)
    apply_all(writer, records[:1500])  # a prefix of the stream: what it names is in it
    assert writer.applier.positions == read_positions(engine)  # written by the child
    os.kill(process.pid, signal.SIGKILL)
    # As `duhub replay` runs (SIGPIPE deadly, for `| head`): the next send to the dead child
    # must fail with an error, not end this process.
    before = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        apply_all(writer, records)
    finally:
        signal.signal(signal.SIGPIPE, before)
    writer.close()
    assert not process.usable
    # Once: from then on the parent writes in turn rather than try the dead child again.
    assert caplog.text.count("the writer process is gone") == 1
    assert_same_read_model(engine, reference, writer)


@pytest.fixture
def started(monkeypatch) -> list[str]:
    """The URLs of the writer processes replay starts from now on."""
    urls: list[str] = []

    class Counting(ProcessWriter):
        def __init__(self, url: str) -> None:
            urls.append(url)
            super().__init__(url)

    monkeypatch.setattr(replay_module, "ProcessWriter", Counting)
    return urls


@pytest.fixture
def log_600(tmp_path) -> tuple[EmbeddedLog, int]:
    items = list(stored_records(600, seed=9, duplicates_in_log=True)[0])
    log = EmbeddedLog(tmp_path / "log")
    log.append(items)
    return log, len(items)


def test_replay_starts_a_writer_process_only_for_a_long_log(
    tmp_path, monkeypatch, started, log_600
) -> None:
    log, n = log_600
    digests = []
    for name, least in (("short", n + 1), ("long", n)):
        monkeypatch.setattr(replay_module, "PROCESS_WRITER_MIN_RECORDS", least)
        _, engine = sqlite(tmp_path, name)
        try:
            done = replay_module.replay(log, engine)
            assert done.done == n
            digests.append(digest(table_digests(engine)))
        finally:
            engine.dispose()
    assert started == [f"sqlite:///{tmp_path / 'long'}.db"]
    assert digests[0] == digests[1]


def test_a_hub_far_behind_its_log_catches_up_as_replay_does(
    tmp_path, monkeypatch, started, log_600
) -> None:
    log, n = log_600
    monkeypatch.setattr(replay_module, "PROCESS_WRITER_MIN_RECORDS", 1)
    digests = []
    for name, long_backlog in (("in-turn", n + 1), ("far-behind", n)):
        monkeypatch.setattr(embedded, "LONG_BACKLOG", long_backlog)
        _, engine = sqlite(tmp_path, name)
        try:
            tailer = LogTailer(log, engine)
            assert tailer.catch_up() == n
            assert tailer.positions == read_positions(engine) == {0: n}
            digests.append(digest(table_digests(engine)))
        finally:
            engine.dispose()
    assert started == [f"sqlite:///{tmp_path / 'far-behind'}.db"]
    assert digests[0] == digests[1]
