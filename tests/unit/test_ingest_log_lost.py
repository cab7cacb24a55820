"""Ingest refuses for good, answering UNAVAILABLE (nothing acknowledged) and telling its
process, once the log acknowledges an append below offsets it held before: the log lost
records (a broker that lost its data, a topic made again), and the workers would take the new
records for those applied at their offsets. Before 2026-12-05 ingest answered them ACCEPTED,
and none was ever counted (tests/integration/test_log_lost_while_running.py on Kafka)."""

from __future__ import annotations

from pathlib import Path

import pytest

from duhub.bootstrap import load_reference
from duhub.log.belongs import LogLost
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel.engine import open_engine
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor, NotReady
from tests.unit.builders import kinds, visit

YIDU = "420581"
NIEJIAHE = "420581101"


def test_an_append_acknowledged_below_what_the_log_held_is_refused(tmp_path: Path) -> None:
    log_ = EmbeddedLog(tmp_path / "log")
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    tailer = LogTailer(log_, engine)
    ingestor = Ingestor(log_, engine)
    told: list[str] = []
    ingestor.on_failure = told.append
    empty = EmbeddedLog(tmp_path / "empty")
    try:
        load_reference(ingestor, engine)
        events = [visit(NIEJIAHE, event_id=f"v{i}", source=YIDU, seq=i) for i in (1, 2, 3)]
        assert kinds(ingestor.publish(events[:1])) == ["accepted"]
        tailer.catch_up()
        held = log_.end_offsets()[0]
        ingestor.log = empty  # the log comes back without what it held
        with pytest.raises(NotReady, match=rf"partition 0 at {held}, the log ends at 0\)"):
            ingestor.publish(events[1:2])
        assert len(told) == 1 and f"partition 0 at {held}" in told[0]
        with pytest.raises(NotReady, match="--log lost records"):  # and from then on
            ingestor.publish(events[2:])
        assert empty.end_offsets()[0] == 1  # appended once, never acknowledged
    finally:
        empty.close()
        log_.close()
        engine.dispose()


# The tailer's thread ends raising what stopped it (after noting it in `error`).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_log_tailer_stops_on_a_log_that_ends_before_its_positions(tmp_path: Path) -> None:
    """`duhub up --log kafka://…` and `duhub serve aggregate` on the embedded log: before
    2026-12-05 the tailer read nothing there and waited, then took the new log's records past
    its positions, and never those below."""
    log_ = EmbeddedLog(tmp_path / "log")
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    tailer = LogTailer(log_, engine)
    empty = EmbeddedLog(tmp_path / "empty")
    try:
        load_reference(Ingestor(log_, engine), engine)
        tailer.catch_up()
        held = log_.end_offsets()[0]
        tailer.log = empty
        tailer.start()
        assert tailer._thread is not None
        tailer._thread.join(10)
        assert isinstance(tailer.error, LogLost)
        assert f"partition 0 at {held}, the log ends at 0" in str(tailer.error)
    finally:
        tailer.stop()
        empty.close()
        log_.close()
        engine.dispose()


def test_a_resync_beside_other_writers_takes_none_of_their_records_for_lost_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed append, ingest waits for the read model to hold what the log held then.
    It compared the read model's positions with the log's end read once, at the start of that
    wait: another ingest, or a county's Kafka-direct producer, appended meanwhile and the
    workers applied it, and ingest stopped for good saying the log had lost records (a chaos
    probe, 2026-12-06: a broker restarted beside a second ingest, twice)."""
    import services.ingest.ingestor as ingest_module

    log_ = EmbeddedLog(tmp_path / "log")
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    tailer = LogTailer(log_, engine)
    ingestor = Ingestor(log_, engine)
    other = Ingestor(log_, engine)  # a second ingest on the same log and read model
    told: list[str] = []
    ingestor.on_failure = told.append
    real = ingest_module.read_positions
    wrote: list[str] = []
    writing = []

    def positions_once_others_wrote(engine_):  # type: ignore[no-untyped-def]
        if not writing:  # after the wait read the log's end: another writer, the workers
            writing.append(1)  # (the other ingest reads positions too)
            wrote.extend(kinds(other.publish([visit(NIEJIAHE, event_id="o1", source=YIDU, seq=1)])))
            tailer.catch_up()
        return real(engine_)

    try:
        load_reference(ingestor, engine)
        tailer.catch_up()
        monkeypatch.setattr(ingest_module, "read_positions", positions_once_others_wrote)
        ingestor.ready.clear()
        ingestor._catch_up_after_failure(poll=0.01)
        assert wrote == ["accepted"]
        assert told == [] and ingestor.ready.is_set()
    finally:
        log_.close()
        engine.dispose()
