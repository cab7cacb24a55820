"""Kafka-direct publishing: events written straight to the topic pass the same rules in the
Faust worker; what fails lands in the dead-letter topic with its reason."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from google.protobuf import json_format
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import text

from duhub.log.base import LogRecord
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.readmodel.engine import open_engine
from duhub.v1 import events_pb2 as pb
from services.aggregate.apply import BatchApplier, dead_letter_sink
from tests.e2e.hubproc import serve, stat_values
from tests.infra import fresh_database, kafka_log_url
from tests.integration.scale import accountability, publish, wait_applied
from tests.unit.builders import YIDU


def dead_letters(spec: KafkaSpec, want: int, timeout: float = 60) -> list[tuple[bytes, dict]]:  # type: ignore[type-arg]
    consumer = KafkaConsumer(
        bootstrap_servers=spec.bootstrap, group_id=None, enable_auto_commit=False
    )
    tp = TopicPartition(spec.dlq_topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    found: list[tuple[bytes, dict]] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        for m in consumer.poll(timeout_ms=500).get(tp, []):
            found.append((m.value, {k: v.decode() for k, v in m.headers}))
    consumer.close()
    return found


@contextmanager
def applier_sending_dead_letters(tmp_path: Path) -> Iterator[tuple[KafkaSpec, BatchApplier]]:
    """A worker's batch applier on a fresh one-partition topic, its dead letters sent there."""
    spec = KafkaSpec.parse(kafka_log_url(partitions=1))
    kafka = KafkaLog(spec)  # makes the topics
    try:
        engine = open_engine(f"sqlite:///{tmp_path / 'rm.db'}")
        yield spec, BatchApplier(engine, on_dead=dead_letter_sink(kafka))
    finally:
        kafka.close()


def county_records(values: Sequence[bytes]) -> list[LogRecord]:
    """The values as one county's records at offsets 0, 1, … of partition 0."""
    return [LogRecord(0, i, YIDU.encode(), v, 0, False) for i, v in enumerate(values)]


def letter_ids(db_url: str) -> dict[tuple[int, int], str]:
    """(partition, offset) -> event_id of each dead letter in the read model."""
    engine = open_engine(db_url, create=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text('SELECT partition, "offset", event_id FROM dead_letters'))
            return {(p, o): event_id for p, o, event_id in rows}
    finally:
        engine.dispose()


def blank_as_before(db_url: str, partition: int, offset: int) -> None:
    """Leave the dead letter at partition:offset as versions before 2026-12-05 wrote one
    failing a field check: without its event_id, and the read model not yet upgraded."""
    engine = open_engine(db_url, create=False)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE dead_letters SET event_id = '' WHERE partition = :p AND \"offset\" = :o"
                ),
                {"p": partition, "o": offset},
            )
            conn.execute(text("DELETE FROM layout WHERE name = 'dead-letter-ids'"))
    finally:
        engine.dispose()


def test_kafka_direct_events_are_checked_and_failures_reach_the_dlq(tmp_path: Path) -> None:
    log_url = kafka_log_url(partitions=3)
    spec = KafkaSpec.parse(log_url)
    with fresh_database() as db_url:
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        procs = [serve("aggregate", *opts), serve("ingest", *opts), serve("query", *opts)]
        aggregate, ingest, query = procs
        try:
            # Through ingest first, so the reference hierarchy is in and applied.
            results = publish(ingest.address, [accountability("420581", 1, 2)])
            wait_applied(query.address, {results[0].partition: results[0].offset + 1})

            producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
            good = accountability("420581", 2, 5)
            outside = accountability("420581", 3, 1)
            outside.accountability_imposed.unit_id = "420582"  # not the source's county
            bad_persons = accountability("420581", 4, 1)
            bad_persons.accountability_imposed.persons = 0
            ids = [outside.event_id, bad_persons.event_id]
            sent = [
                producer.send(spec.topic, key=b"420581", value=good.SerializeToString()),
                producer.send(spec.topic, key=b"420581", value=b"\xff\x00not protobuf"),
                producer.send(spec.topic, key=b"420581", value=outside.SerializeToString()),
                producer.send(spec.topic, key=b"420581", value=bad_persons.SerializeToString()),
                # A duplicate of an event ingest accepted: acknowledged, never counted twice.
                producer.send(
                    spec.topic,
                    key=b"420581",
                    value=accountability("420581", 1, 2).SerializeToString(),
                ),
            ]
            producer.flush()
            metas = [f.get(timeout=30) for f in sent]
            producer.close()
            wait_applied(query.address, {metas[-1].partition: metas[-1].offset + 1})

            assert stat_values(
                query.address, "--metric", "accountability_persons", "--scope", "420581"
            ) == {"accountability_persons": 7}
            letters = dead_letters(spec, want=3)
            reasons = [h["duhub-reason"] for _, h in letters]
            assert len(letters) == 3, reasons
            assert reasons[0].startswith("value: not a serialized duhub.v1.Event")
            assert reasons[1].startswith("accountability_imposed.unit_id:")
            assert reasons[2].startswith("accountability_imposed.persons:")
            assert letters[0][0] == b"\xff\x00not protobuf"  # the original bytes, kept
            assert [int(h["duhub-offset"]) for _, h in letters] == [m.offset for m in metas[1:4]]
            # The read model files each under the id its value names (none: no Event). Before
            # 2026-12-05 the one failing a field check had an empty id there and in the log.
            named = {
                (m.partition, m.offset): i for m, i in zip(metas[1:4], ["", *ids], strict=True)
            }
            assert letter_ids(db_url) == named
            where = f"{metas[3].partition}:{metas[3].offset}"
            aggregate.find(re.compile(rf"dead letter at {where} \(420581-4\): accountability"))

            # As an earlier version left it: a worker starting on it names it from the log.
            aggregate.stop()
            blank_as_before(db_url, metas[3].partition, metas[3].offset)
            assert letter_ids(db_url)[(metas[3].partition, metas[3].offset)] == ""
            procs[0] = serve("aggregate", *opts)
            deadline = time.monotonic() + 60
            while letter_ids(db_url) != named and time.monotonic() < deadline:
                time.sleep(0.5)
            assert letter_ids(db_url) == named
        finally:
            for p in procs:
                p.stop()


def test_event_json_roundtrip_is_the_documented_value_format() -> None:
    """The value is the protobuf-serialized duhub.v1.Event; JSON is only for files and CLI."""
    event = accountability("420581", 9, 3)
    value = event.SerializeToString()
    assert pb.Event.FromString(value) == event
    assert json_format.MessageToDict(event)["accountabilityImposed"]["persons"] == 3


def test_a_record_without_a_value_is_dead_lettered_and_the_worker_goes_on(tmp_path: Path) -> None:
    """A null value (a tombstone, as a compacting or Connect producer writes) or an empty one is
    no Event: dead-lettered naming `value`. Before 2026-12-05 a null value stopped the worker
    (`TypeError: expected bytes, NoneType found`), and again at every restart: nothing after it
    was ever counted."""
    log_url = kafka_log_url(partitions=1)
    spec = KafkaSpec.parse(log_url)
    with fresh_database() as db_url:
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        procs = [serve("aggregate", *opts), serve("ingest", *opts), serve("query", *opts)]
        aggregate, ingest, query = procs
        try:
            publish(ingest.address, [accountability("420581", 1, 2)])
            producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
            sent = [
                producer.send(spec.topic, key=b"420581", value=None),
                producer.send(spec.topic, key=b"420581", value=b""),
                producer.send(
                    spec.topic,
                    key=b"420581",
                    value=accountability("420581", 2, 5).SerializeToString(),
                ),
            ]
            metas = [f.get(timeout=30) for f in sent]
            producer.close()
            wait_applied(query.address, {metas[-1].partition: metas[-1].offset + 1}, timeout=60)

            assert aggregate.proc.poll() is None, "the aggregate worker stopped"
            assert stat_values(
                query.address, "--metric", "accountability_persons", "--scope", "420581"
            ) == {"accountability_persons": 7}
            letters = dead_letters(spec, want=2)
            reasons = [h["duhub-reason"] for _, h in letters]
            assert len(letters) == 2, reasons
            assert all(r.startswith("value: no value") for r in reasons), reasons
            assert [int(h["duhub-offset"]) for _, h in letters] == [m.offset for m in metas[:2]]
        finally:
            for p in procs:
                p.stop()
