"""Ingest beside Kafka-direct transactions (README, Kafka-direct publishing).

While a producer's transaction is open, the hub reads its partition up to where the
transaction starts (its last stable offset) and counts itself caught up there. Ingest's own
records after that start are acknowledged, yet the read model cannot have them until the
transaction ends. A new ingest process, or one after a failed append, which starts over from
the read model alone, did not know them.

Before: such an ingest accepted a resent event a second time and linked the source's next event
to the head before them (each forking the source's hash chain: `audit verify` reported the log
tampered with), and took its first stamp from the records before the transaction, earlier than
its own records' after it. And a partition whose last 16 offsets were an aborted transaction
gave no stamp at all, so a restarted ingest with a clock behind stamped back in time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.partitioner.default import murmur2
from sqlalchemy import Engine

from duhub.audit.chain import audit
from duhub.audit.records import log_records
from duhub.convert import recorded_at
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.readmodel.engine import open_engine
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from services.aggregate.embedded import LogTailer
from services.ingest import resume
from services.ingest.ingestor import Ingestor
from tests.infra import kafka_log_url
from tests.integration.test_kafka_aborted_transaction import County, direct, url_of
from tests.integration.test_lost_ack import LostAck, publish_until_ready
from tests.unit.builders import (
    CITY,
    HOUR,
    YIDU,
    YIDU_T1,
    Clock,
    accountability,
    hierarchy,
    kinds,
    unit,
)

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def kafka1() -> Iterator[LostAck]:
    log = LostAck(KafkaSpec.parse(kafka_log_url(partitions=1)))
    yield log
    log.close()


def city(seq: int, persons: int = 1) -> pb.Event:
    """An event of the city's node (its source shares the county's partition: one)."""
    return accountability(YIDU_T1, persons, event_id=f"city-{seq}", source=CITY, seq=seq)


def ahead(ingest: Ingestor) -> None:
    """Put ingest's clock an hour ahead of the broker's: its next stamps are the log's latest."""
    ingest.clock = Clock(time.time_ns() + HOUR)


def _live(log: KafkaLog, path: Path) -> tuple[Engine, Ingestor, LogTailer]:
    engine = open_engine(f"sqlite:///{path}")
    ingest = Ingestor(log, engine, Clock())
    assert set(kinds(ingest.publish(hierarchy(), allow_reference=True))) == {"accepted"}
    tailer = LogTailer(log, engine)
    tailer.catch_up()
    return engine, ingest, tailer


def stamp(log: KafkaLog, result: ipb.EventResult) -> int:
    (rec,) = log.read(result.partition, result.offset, 1)
    return recorded_at(rec)


def city_persons(engine: Engine) -> int:
    (row,) = statistics(engine, ["accountability_persons"], YIDU_T1)
    return row.values.get("accountability_persons", 0)


def test_a_restarted_ingest_knows_its_records_past_an_open_transaction(
    kafka1: LostAck, tmp_path: Path
) -> None:
    live, ingest, tailer = _live(kafka1, tmp_path / "live.db")
    ahead(ingest)
    county = County(kafka1.spec)
    restarted = Ingestor(KafkaLog(kafka1.spec, create=False), live, Clock())  # clock behind
    try:
        (start,) = county.begin(direct(5, 1, first=1))
        (first,) = ingest.publish([city(1, persons=2)])
        assert (first.result, first.offset > start) == (ipb.RESULT_ACCEPTED, True)
        tailer.catch_up()  # up to the transaction's start

        restarted.wait_until_caught_up()
        # The node never heard the answer (ingest went down): its outbox sends again.
        (again,) = restarted.publish([city(1, persons=2)])
        assert again.result == ipb.RESULT_DUPLICATE
        # Answered with where the original stands, though the read model cannot have it yet.
        assert (again.partition, again.offset) == (first.partition, first.offset)
        (then,) = restarted.publish([city(2, persons=3)])
        assert then.result == ipb.RESULT_ACCEPTED

        county.producer.commit_transaction()
        county.ended(start)
    finally:
        county.close()
        restarted.log.close()
    assert stamp(kafka1, then) >= stamp(kafka1, first)  # stamps never go back
    tailer.catch_up()
    assert city_persons(live) == 2 + 3  # each once (the county's 5 are its own unit's)
    report = audit(log_records(url_of(kafka1)))
    assert report.findings == []  # nothing was tampered with


def test_a_resent_event_past_an_open_transaction_is_not_appended_twice(
    kafka1: LostAck, tmp_path: Path
) -> None:
    """The broker took the event but ingest never heard (LostAck): ingest waits until the
    read model holds all the log does, which is only up to the open transaction's start."""
    live, ingest, tailer = _live(kafka1, tmp_path / "live.db")
    county = County(kafka1.spec)
    try:
        (start,) = county.begin(direct(5, 1, first=1))
        end = kafka1.end_offsets()[0]
        kafka1.lose_next = True
        with pytest.raises(KafkaTimeoutError):  # the service answers UNAVAILABLE
            ingest.publish([city(1, persons=2)])
        assert kafka1.end_offsets()[0] == end  # held back behind the open transaction

        # Before: ACCEPTED again, a second copy linking to the same predecessor as the first.
        assert kinds(publish_until_ready(ingest, tailer, [city(1, persons=2)])) == ["duplicate"]
        assert kinds(publish_until_ready(ingest, tailer, [city(2, persons=3)])) == ["accepted"]

        county.producer.commit_transaction()
        county.ended(start)
    finally:
        county.close()
    tailer.catch_up()
    assert city_persons(live) == 2 + 3  # each once (the county's 5 are its own unit's)
    report = audit(log_records(url_of(kafka1)))
    assert report.findings == []


def test_a_restarted_ingest_stamps_after_a_long_aborted_transaction(
    kafka1: LostAck, tmp_path: Path
) -> None:
    """The partition ends with ingest's latest stamp, then a transaction of 20 records its
    producer aborted (21 offsets with the marker): no record to read in the last 16."""
    live, ingest, tailer = _live(kafka1, tmp_path / "live.db")
    ahead(ingest)
    (first,) = ingest.publish([city(1)])
    county = County(kafka1.spec)
    try:
        county.abort(direct(5, 20, first=1))
    finally:
        county.close()
    tailer.catch_up()

    restarted = Ingestor(KafkaLog(kafka1.spec, create=False), live, Clock())  # clock behind
    try:
        (then,) = restarted.publish([city(2)])
    finally:
        restarted.log.close()
    assert then.result == ipb.RESULT_ACCEPTED
    # Before: stamped with its own clock, an hour and more before `first`.
    assert stamp(kafka1, then) >= stamp(kafka1, first)


def test_past_its_reach_the_stamp_search_says_why_it_found_none(
    kafka1: LostAck,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bounded: a run of aborted records longer than the reach gives no stamp, and a warning
    naming the partition and the reason."""
    monkeypatch.setattr(resume, "STAMP_REACH", 16)
    _, _, tailer = _live(kafka1, tmp_path / "live.db")
    county = County(kafka1.spec)
    try:
        county.abort(direct(5, 20, first=1))
    finally:
        county.close()
    tailer.catch_up()
    with caplog.at_level(logging.WARNING, logger=resume.__name__):
        assert resume.latest_stamp(kafka1) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.name == resume.__name__]
    assert "partition 0 holds no record to read in its last 16 offsets" in warning
    assert "aborted transactions" in warning


def test_a_restarted_ingest_knows_its_record_naming_a_unit_another_partition_registered(
    tmp_path: Path,
) -> None:
    """Ingest's records past an open transaction, in two partitions: the city registers a
    village (partition 3, behind a transaction the city's system holds open), then the county
    reports on it (partition 2: the aggregator holds it back until the village is applied).
    A restarted ingest took in its records partition by partition: the county's came first,
    named a village it did not know yet, and was left out as if rejected. The county's resend
    was then ACCEPTED a second time, a second copy in the log."""
    log = KafkaLog(KafkaSpec.parse(kafka_log_url(partitions=4)))
    # As the producer places them (murmur2 of the source): the city after the county.
    assert {s: (murmur2(s.encode()) & 0x7FFFFFFF) % 4 for s in (CITY, YIDU)} == {CITY: 3, YIDU: 2}
    live, ingest, tailer = _live(log, tmp_path / "live.db")
    village = "420581101299"
    county = County(log.spec, source=CITY)
    restarted = Ingestor(KafkaLog(log.spec, create=False), live, Clock())
    try:
        county.begin([accountability(CITY, 5, event_id="direct-c1", source=CITY, seq=100)])
        registered = unit(village, YIDU_T1, pb.LEVEL_VILLAGE, event_id="c-1", source=CITY)
        report = accountability(village, 2, event_id="y-1", source=YIDU, seq=1)
        assert kinds(ingest.publish([registered])) == ["accepted"]
        (first,) = ingest.publish([report])
        assert first.result == ipb.RESULT_ACCEPTED

        # The county never heard the answer (ingest went down): its outbox sends again.
        (again,) = restarted.publish([report])
        assert again.result == ipb.RESULT_DUPLICATE, again
        assert (again.partition, again.offset) == (first.partition, first.offset)
    finally:
        county.producer.abort_transaction()
        county.close()
        restarted.log.close()
        log.close()
