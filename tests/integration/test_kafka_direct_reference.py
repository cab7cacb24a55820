"""Kafka-direct events pass the same checks as ingest's: the source `reference` is the hub's
own (its reference hierarchy, written through ingest), so a client may not publish as it
there either. Before, the aggregator checked every record with the reference allowed: a
Kafka-direct event from `reference` was applied, with authority over every unit (a
registration of a city, a sanction for any county), where ingest rejects it."""

from __future__ import annotations

from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import select

from duhub.bootstrap import load_reference
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor
from tests.infra import kafka_log_url
from tests.unit.builders import DANG_T1, Clock, hierarchy, kinds, sanction, unit


def test_a_kafka_direct_event_may_not_use_the_reference_source(tmp_path: Path) -> None:
    url = kafka_log_url(partitions=1)
    spec = KafkaSpec.parse(url)
    log = KafkaLog(spec)
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    try:
        ingestor = Ingestor(log, engine, Clock())
        assert kinds(ingestor.publish(hierarchy(), allow_reference=True)) == ["accepted"] * 8
        direct = [
            sanction(DANG_T1, 7, event_id="k-1", source="reference", seq=100),
            unit("999999", "", pb.LEVEL_CITY, event_id="k-2", source="reference", seq=101),
            # Before, one on a seq the hub's reference data took was told that seq was used.
            sanction(DANG_T1, 7, event_id="k-3", source="reference", seq=1),
        ]
        # Through ingest, both are refused naming the source.
        assert [(r.result, r.field) for r in ingestor.publish(direct)] == [
            (ipb.RESULT_REJECTED, "source")
        ] * 3
        producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
        for e in direct:
            producer.send(spec.topic, key=b"reference", value=e.SerializeToString())
        producer.flush()
        producer.close()
        LogTailer(log, engine).catch_up()

        with engine.connect() as conn:
            dead = conn.execute(select(s.dead_letters.c.event_id, s.dead_letters.c.reason)).all()
            units = conn.execute(select(s.units.c.unit_id)).scalars().all()
        assert [(i, r.split(":")[0]) for i, r in dead] == [
            ("k-1", "source"),
            ("k-2", "source"),
            ("k-3", "source"),
        ]
        assert "999999" not in units
        (row,) = statistics(engine, ["sanctioned_persons"], DANG_T1)
        assert row.values == {"sanctioned_persons": 0}
    finally:
        log.close()
        engine.dispose()


def test_the_reference_is_loaded_though_a_county_wrote_to_the_topic_first(tmp_path: Path) -> None:
    """A county system may come up before the hub and write into the documented topic first.
    Before 2026-12-05 the hub loaded its reference hierarchy only into an empty topic: it left
    it out, every event after was dead-lettered 'unknown unit', for good. What the log held
    before is in the read model (ingest catches up first): no unit there means none was
    registered, so the reference is loaded."""
    url = kafka_log_url(partitions=2)
    spec = KafkaSpec.parse(url)
    log = KafkaLog(spec)
    engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
    try:
        producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
        early = sanction("420581", 2, event_id="early-1", source="420581", seq=1)
        producer.send(spec.topic, key=b"420581", value=early.SerializeToString()).get(30)
        producer.close()
        tailer = LogTailer(log, engine)
        tailer.catch_up()  # the county's event, before any unit: dead-lettered
        ingestor = Ingestor(log, engine, Clock())
        load_reference(ingestor, engine)
        tailer.catch_up()

        with engine.connect() as conn:
            units = conn.execute(select(s.units.c.unit_id)).scalars().all()
        assert "420581" in units
        late = sanction("420581", 3, event_id="late-1", source="420581", seq=2)
        assert kinds(ingestor.publish([late])) == ["accepted"]
        tailer.catch_up()
        (row,) = statistics(engine, ["sanctioned_persons"], "420581")
        assert row.values == {"sanctioned_persons": 3}
    finally:
        log.close()
        engine.dispose()
