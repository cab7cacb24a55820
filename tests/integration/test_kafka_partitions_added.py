"""Partitions added to the events topic while the hub runs (`kafka-topics --alter
--partitions`, an admin client's create_partitions; found by a chaos probe, 2026-12-06).

Before, the log learnt its partitions once at start: a read model's position in a partition
added later was taken for the log ending at 0 there, and every aggregate worker (then ingest,
at its next failed append) stopped saying the log lost records and to rebuild the read model.
And ingest placed a source by the topic's count now: after the change a county's events went
to another partition than its earlier ones, their order lost across the two (`audit verify`
said REORDERED on an untouched log)."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewPartitions
from kafka.errors import KafkaTimeoutError

from duhub.log import kafka as kafka_log
from duhub.log.belongs import ends_covering, refuse_lost
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.log.origin import INGEST_ORIGIN, ORIGIN_HEADER
from duhub.log.placement import header, place
from duhub.v1 import ingest_pb2 as ipb
from tests.e2e.hubproc import DuhubProcess, serve, stat_values
from tests.infra import fresh_database, kafka_log_url, postgres_url
from tests.integration.scale import accountability, ends_of, publish, wait_applied

pytestmark = pytest.mark.kafka

SOURCES = (b"420504", b"420529")
NEW = b"420582"  # placed by 3 partitions, on the one added
PERSONS = ("--metric", "accountability_persons")


def _grow(spec: KafkaSpec, total: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=spec.bootstrap)
    try:
        admin.create_partitions({spec.topic: NewPartitions(total_count=total)})
    finally:
        admin.close()


@pytest.fixture
def spec() -> Iterator[KafkaSpec]:
    yield KafkaSpec.parse(kafka_log_url(partitions=2))


def test_a_source_keeps_its_partition_after_partitions_are_added(spec: KafkaSpec) -> None:
    # Under 3 partitions the sources would go elsewhere: what the test is about.
    assert [place(s, 2) for s in SOURCES] != [place(s, 3) for s in SOURCES]
    first = KafkaLog(spec)
    try:
        before = first.append(_items(20))
    finally:
        first.close()
    placed: dict[bytes, set[int]] = {s: set() for s in SOURCES}
    for (p, _), (k, _) in zip(before, _items(20), strict=True):
        placed[k].add(p)
    assert all(len(ps) == 1 for ps in placed.values()), placed
    _grow(spec, 3)
    again = KafkaLog(spec)  # ingest restarted: the topic has 3 partitions now
    try:
        assert again.partitions() == [0, 1, 2]
        after = again.append([*_items(20), (NEW, b"new")])
    finally:
        again.close()
    for (p, _), (k, _) in zip(after, [*_items(20), (NEW, b"new")], strict=True):
        if k in placed:
            assert {p} == placed[k], (k, p, placed[k])
        else:
            assert p == place(NEW, 2), p  # placed by the count the topic had first


def test_a_count_no_topic_of_ingest_had_is_not_placed_by(spec: KafkaSpec) -> None:
    # A Kafka-direct record claiming ingest's origin (taken at its word on a hub without an
    # origin key) with a count of 99: ingest placed by it, and every append went to a
    # partition the topic does not have.
    spec = dataclasses.replace(spec, key_file="")  # the headers taken at their word
    log = KafkaLog(spec)  # makes the topic; ingest reads its count at the first append
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap)
    try:
        forged = [(ORIGIN_HEADER, INGEST_ORIGIN), header(99)]
        producer.send(spec.topic, key=b"x", value=b"forged", partition=0, headers=forged).get(10)
        placed = log.append(_items(3))
    finally:
        producer.close()
        log.close()
    assert [p for p, _ in placed] == [place(k, 2) for k, _ in _items(3)]


def test_an_append_is_refused_when_the_placement_count_cannot_be_read(
    spec: KafkaSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A broker too slow to hand over the log's last records (every fetch empty here): ingest
    # settled, without a word, on the topic's count now for the rest of its life. And one
    # deadline for all the partitions, not one each: appends wait behind it.
    first = KafkaLog(spec)
    try:
        first.append(_items(2))
    finally:
        first.close()
    _grow(spec, 3)
    log = KafkaLog(spec)
    try:
        # Two partitions unread: a deadline each would take 2 x 3 s at least, one for both
        # 3 s and the broker's calls (at 1 s, 0.9 s was left to them: too little under load).
        read_s = 3.0
        monkeypatch.setattr(kafka_log, "PLACEMENT_READ_S", read_s)
        with monkeypatch.context() as slow:
            slow.setattr(log._consumer, "poll", lambda **_: {})
            started = time.monotonic()
            with pytest.raises(KafkaTimeoutError, match=r"partitions \[0, 1\]"):
                log.append([(NEW, b"new")])
            assert time.monotonic() - started < 2 * read_s - 0.5
        (placed,) = log.append([(NEW, b"new")])  # read this time: the count ingest had
        assert placed[0] == place(NEW, 2)
    finally:
        log.close()


def _items(n: int) -> list[tuple[bytes, bytes]]:
    return [(s, b"seq %d" % i) for i in range(n) for s in SOURCES]


def test_a_position_in_an_added_partition_is_not_a_log_that_lost_records(
    spec: KafkaSpec,
) -> None:
    log = KafkaLog(spec)
    try:
        assert log.partitions() == [0, 1]
        assert set(log.end_offsets()) == {0, 1}
        _grow(spec, 3)
        # Another producer writes to the added partition (ingest elsewhere, or Kafka-direct),
        # and a worker applies it: the read model stands at 1 there.
        producer = KafkaProducer(bootstrap_servers=spec.bootstrap)
        try:
            producer.send(spec.topic, key=NEW, value=b"x", partition=2).get(timeout=30)
        finally:
            producer.close()
        positions = {0: 0, 1: 0, 2: 1}
        ends = ends_covering(log, positions)
        assert ends == {0: 0, 1: 0, 2: 1}
        refuse_lost(positions, ends)  # no LogLost: the log holds it
        assert log.partitions() == [0, 1, 2]
        assert log.start_offsets() == {0: 0, 1: 0, 2: 0}
    finally:
        log.close()


def _exits(proc: DuhubProcess, timeout: float) -> int | None:
    try:
        return proc.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # still running
        return None


@pytest.mark.slow
@pytest.mark.postgres
def test_the_hub_runs_on_in_order_when_partitions_are_added(tmp_path: Path) -> None:
    """The probe's case: ingest and a worker on 2 partitions, a third added. Takes ~6 min: the
    worker's consumer group hands out the added partition at its metadata refresh (5 min)."""
    postgres_url()
    with fresh_database() as db_url:
        log_url = kafka_log_url(partitions=2)
        spec = KafkaSpec.parse(log_url)
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        worker = serve("aggregate", *opts)
        ingest = serve("ingest", *opts)
        query = serve("query", "--db", db_url, "--data-dir", str(tmp_path))
        procs = [worker, ingest, query]
        try:
            events = [accountability(s.decode(), q, 1) for q in range(1, 21) for s in SOURCES]
            first = publish(ingest.address, events)
            assert all(r.result == ipb.RESULT_ACCEPTED for r in first)
            placed = {e.source: r.partition for e, r in zip(events, first, strict=True)}
            _grow(spec, 3)
            ingest.stop()
            ingest = serve("ingest", *opts)
            procs.append(ingest)
            more = [accountability(s.decode(), q, 1) for q in range(21, 41) for s in SOURCES]
            more.append(accountability(NEW.decode(), 1, 1))
            later = publish(ingest.address, more)
            assert all(r.result == ipb.RESULT_ACCEPTED for r in later)
            for e, r in zip(more, later, strict=True):
                assert r.partition == placed.get(e.source, place(NEW, 2)), (e.source, r)
            # A county's Kafka-direct event on the added partition: the worker applies it once
            # its group hands that out, and the read model stands at 1 there.
            producer = KafkaProducer(bootstrap_servers=spec.bootstrap)
            try:
                value = accountability(NEW.decode(), 2, 1).SerializeToString()
                producer.send(spec.topic, key=NEW, value=value, partition=2).get(timeout=30)
            finally:
                producer.close()
            wait_applied(query.address, {**ends_of([*first, *later]), 2: 1}, timeout=420)
            assert _exits(worker, 15) is None, "".join(worker.output[-30:])  # 3 watchdog turns
            assert _exits(ingest, 0.1) is None, "".join(ingest.output[-30:])
            assert stat_values(query.address, *PERSONS) == {"accountability_persons": 82}
            assert "lost records" not in "".join(worker.output + ingest.output)
        finally:
            for p in procs:
                p.stop()
