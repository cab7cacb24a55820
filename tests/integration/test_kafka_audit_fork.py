"""Audit verify of a Kafka log names the fork a county's node moved to a standby ingest
before the workers caught up leaves (README, failover) FORKED, as on the embedded log: the
topic is read a second time through its kafka:// URL, up to the fork's link. Before
2026-12-06 it said ALTERED at the event before it."""

from __future__ import annotations

from pathlib import Path

import pytest

from duhub.cli.main import main
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.readmodel.engine import open_engine
from duhub.v1 import events_pb2 as pb
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor
from tests.infra import kafka_log_url
from tests.unit.builders import DANG, DANG_T1, YIDU, YIDU_T1, hierarchy, kinds, visit

pytestmark = [pytest.mark.kafka]


def yidu(*seqs: int) -> list[pb.Event]:
    return [visit(YIDU_T1, event_id=f"y{s}", source=YIDU, seq=s) for s in seqs]


def test_a_failover_fork_on_kafka_is_named_a_fork(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = kafka_log_url(partitions=2)
    log, standby_log = KafkaLog(KafkaSpec.parse(url)), None
    engine = open_engine(f"sqlite:///{tmp_path / 'live.db'}")
    try:
        first = Ingestor(log, engine)
        assert set(kinds(first.publish(hierarchy(), allow_reference=True))) == {"accepted"}
        tailer = LogTailer(log, engine)
        tailer.catch_up()
        standby_log = KafkaLog(KafkaSpec.parse(url), create=False)
        standby = Ingestor(standby_log, engine)
        # The standby runs: it took in the log at its first append, another county's event.
        dang = visit(DANG_T1, event_id="d1", source=DANG, seq=1)
        assert kinds(standby.publish([dang])) == ["accepted"]
        assert kinds(first.publish(yidu(1, 2, 3))) == ["accepted"] * 3
        tailer.catch_up()
        at = first.publish(yidu(4, 5))  # not applied when the node moves
        moved = standby.publish(yidu(6, 7))
        assert kinds(moved) == ["accepted"] * 2
    finally:
        log.close()
        if standby_log is not None:
            standby_log.close()
        engine.dispose()
    assert main(["audit", "verify", "--log", url]) == 4
    out = capsys.readouterr().out
    p, six, five = moved[0].partition, moved[0].offset, at[1].offset
    assert (
        f"FORKED    source {YIDU} at {p}:{six} (y6): seq 6 at {p}:{six} continues from seq 3 "
        f"at {p}:{at[0].offset - 1}, not from seq 5 at {p}:{five} before it"
    ) in out, out
    assert "ALTERED" not in out
