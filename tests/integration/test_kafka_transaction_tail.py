"""A partition whose last offset is a transaction marker: a county system publishing
Kafka-direct with a transactional producer leaves one after its records (the commit marker
takes an offset, and the high watermark is past it). Everything there is applied once the
read model's position is past the last record, so the hub must count it caught up: the lag
is 0, a restarted ingest opens (health SERVING), `duhub up --log kafka://…` starts beside it,
the aggregate worker's watchdog sees no work waiting, and replay and `duhub audit verify` end.

Before, each of these compared the read model's position with the high watermark, which it
never reaches: the lag stayed 1, ingest stayed NOT_SERVING and answered UNAVAILABLE for good,
`duhub up` refused to start ("log: no record from T[0] at N", exit 2) and the aggregate worker
stopped itself every minute (exit 70)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaProducer

from duhub.audit.chain import audit
from duhub.audit.records import log_records
from duhub.bootstrap import Hub, HubConfig, open_log
from duhub.log.base import holds_all
from duhub.log.kafka import KafkaSpec
from duhub.metrics import lag_collector
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from services.aggregate.driver import ContiguousDriver
from services.aggregate.embedded import LogTailer
from services.aggregate.replay import replay
from services.ingest import ingestor as ingestor_module
from services.ingest.ingestor import Ingestor
from tests.infra import kafka_log_url

pytestmark = [pytest.mark.kafka]


def publish_in_a_transaction(spec: KafkaSpec, n: int) -> None:
    producer = KafkaProducer(
        bootstrap_servers=spec.bootstrap,
        transactional_id=f"county-420581-{spec.topic}",
        enable_idempotence=True,
        acks="all",
    )
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(n):
        event = pb.Event(
            event_id=f"txn-{i}",
            source="420581",
            seq=i + 1,
            occurred_at=Timestamp(seconds=1_667_260_800),
            talk_held=pb.TalkHeld(
                unit_id="420581", area="ecology", kind=pb.TALK_KIND_OTHER, persons=2
            ),
        )
        producer.send(spec.topic, key=b"420581", value=event.SerializeToString(), partition=0)
    producer.commit_transaction()
    producer.close()


def lag(log_, engine) -> dict[str, float]:  # type: ignore[no-untyped-def]
    (family,) = lag_collector(log_, lambda: read_positions(engine)).collect()  # as served
    return {s.labels["partition"]: s.value for s in family.samples}


def test_a_transaction_marker_at_the_end_of_a_partition_is_caught_up(tmp_path: Path) -> None:
    url = kafka_log_url(partitions=1)
    hub = Hub(HubConfig(tmp_path / "hub", listen="127.0.0.1:0", log_url=url, http=""))
    hub.start()  # loads the reference hierarchy: 1,160 records
    try:
        publish_in_a_transaction(KafkaSpec.parse(url), 3)
        deadline = time.monotonic() + 30
        while read_positions(hub.engine).get(0, 0) < 1163:
            assert time.monotonic() < deadline, "the transaction's records were not applied"
            time.sleep(0.2)
        assert hub.log.end_offsets() == {0: 1164}  # the commit marker holds offset 1163

        # Everything is applied: the lag is 0.
        assert lag(hub.log, hub.engine) == {"0": 0}

        # A restarted ingest opens once the read model holds all the log does.
        ingest = Ingestor(open_log(url), hub.engine)
        threading.Thread(target=ingest.wait_until_caught_up, daemon=True).start()
        assert ingest.ready.wait(20), "ingest never opened: it waits for the marker's offset"
        ingest.log.close()

        # An aggregate worker's watchdog sees no work waiting (else it stops the process).
        driver = ContiguousDriver(hub.log, hub.engine)
        assert not driver.stalled({0}, 0.0)
        driver.writer.close()
    finally:
        hub.stop(grace=0)

    # `duhub up --log …` beside this log, on a new read model, catches up and starts.
    other = open_log(url)
    engine = open_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        LogTailer(other, engine).catch_up()
        assert read_positions(engine) == {0: 1163}
        # and `duhub replay` of it ends.
        replayed = open_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
        assert replay(other, replayed).done == 1163
        replayed.dispose()
        # and `duhub audit verify` of it ends (it took the empty read at the marker for a
        # record: IndexError).
        report = audit(log_records(url))
        assert (report.records, report.ok) == (1163, True)
    finally:
        other.close()
        engine.dispose()


def test_an_ingest_waiting_names_the_partitions_behind_not_one_ending_in_a_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Its line says where the read model and the log stand: a partition ending in a commit
    # marker is applied, and was named as if one record were missing there.
    monkeypatch.setattr(ingestor_module, "SAY_WAITING_AFTER_S", 0.0)
    url = kafka_log_url(partitions=2)
    spec = KafkaSpec.parse(url)
    hub = Hub(HubConfig(tmp_path / "hub", listen="127.0.0.1:0", log_url=url, http=""))
    hub.start()
    engine = hub.engine
    try:
        publish_in_a_transaction(spec, 3)  # partition 0, a commit marker after its records
        deadline = time.monotonic() + 30
        while not holds_all(hub.log, 0, read_positions(engine).get(0, 0), 10**9):
            assert time.monotonic() < deadline, "the transaction's records were not applied"
            time.sleep(0.2)
    finally:
        hub.stop(grace=0)
    # A record the hub never applied, in partition 1 (no aggregator runs now).
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
    producer.send(spec.topic, key=b"x", value=b"", partition=1).get(timeout=30)
    producer.close()
    positions = read_positions(engine)
    ingest = Ingestor(open_log(url), open_engine(f"sqlite:///{tmp_path / 'hub' / 'readmodel.db'}"))
    caplog.set_level(logging.WARNING, logger=ingestor_module.__name__)
    waiting = threading.Thread(target=ingest.wait_until_caught_up, daemon=True)
    waiting.start()
    try:
        deadline = time.monotonic() + 20

        def ingests() -> list[logging.LogRecord]:
            # Its own lines: the hub's stop above may have warned too (a close on a loaded host).
            return [r for r in caplog.records if r.name == ingestor_module.__name__]

        while not ingests():
            assert time.monotonic() < deadline, "ingest never said what it waits for"
            time.sleep(0.05)
        said = ingests()[0].getMessage()
        assert f"partition 1 at {positions.get(1, 0)}," in said, said
        assert "partition 0" not in said, said
    finally:
        # Apply it, so the wait ends and no thread is left behind.
        other = open_log(url)
        LogTailer(other, ingest.engine).catch_up()
        other.close()
        assert ingest.ready.wait(20)
        ingest.log.close()
