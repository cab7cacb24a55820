"""A full disk stops an append of the embedded log half way: the whole frames it wrote stay in
the log, unacknowledged (a reader in another process may have read them), and ingest counts
each of them once: resent, it is a duplicate."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from duhub.audit.chain import audit
from duhub.bootstrap import load_reference
from duhub.log.embedded import EmbeddedLog, iter_frames
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.v1 import events_pb2 as pb
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor, NotReady
from tests.unit.builders import kinds, visit

YIDU = "420581"
NIEJIAHE = "420581101"


def test_what_a_failed_append_left_whole_is_answered_duplicate_and_counted_once(
    tmp_path: Path, file_size_limit
) -> None:  # type: ignore[no-untyped-def]
    log_ = EmbeddedLog(tmp_path)
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    tailer = LogTailer(log_, engine)
    ingestor = Ingestor(log_, engine)
    try:
        load_reference(ingestor, engine)
        tailer.catch_up()
        events = [visit(NIEJIAHE, event_id=f"v{i}", source=YIDU, seq=i) for i in (1, 2, 3)]
        size = log_.path.stat().st_size
        assert kinds(ingestor.publish(events[:1])) == ["accepted"]
        grew = log_.path.stat().st_size - size
        # Room for the next frame (a little longer: it links the first) and part of another.
        file_size_limit(log_.path.stat().st_size + grew * 3 // 2)
        with pytest.raises(OSError):
            ingestor.publish(events[1:])
        file_size_limit(None)
        assert log_.end_offsets()[0] == tailer.positions[0] + 2  # v1 and v2 whole, v3 cut
        with pytest.raises(NotReady):  # until the read model holds what the log does
            ingestor.publish(events[1:])
        tailer.catch_up()
        assert ingestor.ready.wait(10)
        assert kinds(ingestor.publish(events[1:])) == ["duplicate", "accepted"]
        tailer.catch_up()
        stored = [pb.Event.FromString(r.value).event_id for r in log_.read(0, 0, 10_000)]
        assert [i for i in stored if i.startswith("v")] == ["v1", "v2", "v3"]
        # The source's hash chain runs on over the kept event: nothing forked or missing.
        frames = iter_frames(log_.path)
        chains = audit((0, offset, ok, value, True, "") for offset, ok, _, value in frames)
        assert chains.ok and not chains.gaps
        with engine.connect() as conn:
            held = conn.execute(
                select(func.count())
                .select_from(s.events_seen)
                .where(s.events_seen.c.source == YIDU)
            )
            assert held.scalar_one() == 3
    finally:
        log_.close()
        engine.dispose()
