"""An append to Kafka that fails for ingest may be in the log anyway: the broker took the
records but its acknowledgement came too late (or was lost). Ingest answered UNAVAILABLE, so
the node sends the events again; meanwhile ingest must check against what the log holds, not
against its own memory of what it appended, which lacks them.

Before: ingest went on from its memory. The same event sent again was ACCEPTED a second time
(its second copy forked the source's hash chain, so `audit verify` reported the log tampered
with), and a conflicting event (another rectification of the same problem) was ACCEPTED and
then went to the aggregator's dead letters: acknowledged, never counted.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError
from sqlalchemy import select

from duhub.audit.chain import audit
from duhub.audit.records import log_records
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.readmodel.statistics import statistics
from duhub.v1 import ingest_pb2 as ipb
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor, NotReady
from tests.infra import kafka_log_url
from tests.unit.builders import (
    CITY,
    HOUR,
    YIDU,
    YIDU_T1,
    Clock,
    T,
    accountability,
    hierarchy,
    kinds,
    problem,
    rectify,
)


class LostAck(KafkaLog):
    """The real Kafka log, whose next append is taken by the broker but answered too late
    for ingest: the appender's DELIVERY_TIMEOUT_MS passed (a slow broker), or the connection
    dropped after the broker wrote. (With DELIVERY_TIMEOUT_MS set to 1 ms, the real appender
    raises this way and the records land, as a rule.)"""

    lose_next = False

    def append(self, items):  # type: ignore[no-untyped-def]
        where = super().append(items)
        if self.lose_next:
            self.lose_next = False
            raise KafkaTimeoutError("the log did not acknowledge the append in time")
        return where


class Hub:
    """Ingest and the aggregator on a fresh topic of real Kafka, the aggregator run by hand."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = kafka_log_url(partitions=1)
        self.log = LostAck(KafkaSpec.parse(self.url))
        self.engine = open_engine(f"sqlite:///{tmp_path / 'readmodel.db'}")
        self.ingestor = Ingestor(self.log, self.engine, Clock())
        self.tailer = LogTailer(self.log, self.engine)
        assert kinds(self.ingestor.publish(hierarchy(), allow_reference=True)) == ["accepted"] * 8

    def publish_lost_ack(self, events) -> None:  # type: ignore[no-untyped-def]
        """Publish; the broker takes the events, but its answer does not reach ingest."""
        end = self.log.end_offsets()[0]
        self.log.lose_next = True
        with pytest.raises(KafkaTimeoutError):  # the service answers UNAVAILABLE
            self.ingestor.publish(events)
        assert self.log.end_offsets()[0] == end + len(events)

    def publish(self, events) -> list[ipb.EventResult]:  # type: ignore[no-untyped-def]
        return publish_until_ready(self.ingestor, self.tailer, events)

    def close(self) -> None:
        self.log.close()
        self.engine.dispose()


def publish_until_ready(ingestor: Ingestor, tailer: LogTailer, events) -> list[ipb.EventResult]:  # type: ignore[no-untyped-def]
    """Publish as the node's outbox does: retry while ingest is not ready, the aggregator
    applying the log meanwhile."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return ingestor.publish(events)
        except NotReady:
            if time.monotonic() > deadline:
                raise
            tailer.catch_up()
            time.sleep(0.1)


def test_events_that_landed_without_an_ack_are_not_accepted_again(
    tmp_path: Path,
) -> None:
    hub = Hub(tmp_path)
    try:
        found = problem("p1", YIDU_T1, event_id="y-1", source=YIDU, seq=1)
        assert kinds(hub.publish([found])) == ["accepted"]
        hub.tailer.catch_up()
        fix = rectify("p1", event_id="y-2", source=YIDU, seq=2, occurred_at=T + HOUR)
        hub.publish_lost_ack([fix])

        # The city rectifies the same problem; the county's outbox sends its event again.
        # (Before: the city's was ACCEPTED, then dead-lettered; the county's REJECTED as
        # already rectified, though it is the one the figures count.)
        other = rectify("p1", event_id="c-1", source=CITY, seq=1, occurred_at=T + 2 * HOUR)
        (r,) = hub.publish([other])
        assert (r.result, r.field) == (ipb.RESULT_REJECTED, "problem_rectified.problem_id")
        assert kinds(hub.publish([fix])) == ["duplicate"]
        hub.tailer.catch_up()

        with hub.engine.connect() as conn:
            dead = conn.execute(select(s.dead_letters.c.event_id)).scalars().all()
        assert dead == []  # no acknowledged event is left out
        (row,) = statistics(hub.engine, ["problems_rectified", "problems_open"], YIDU)
        assert row.values == {"problems_rectified": 1, "problems_open": 0}
    finally:
        hub.close()


def test_a_resent_event_that_landed_without_an_ack_keeps_the_chain_whole(
    tmp_path: Path,
) -> None:
    hub = Hub(tmp_path)
    try:
        first = accountability(YIDU_T1, 2, event_id="y-1", source=YIDU, seq=1)
        hub.publish_lost_ack([first])
        # Before: ACCEPTED again, a second copy linking to the same predecessor as the first.
        assert kinds(hub.publish([first])) == ["duplicate"]
        then = accountability(YIDU_T1, 3, event_id="y-2", source=YIDU, seq=2)
        assert kinds(hub.publish([then])) == ["accepted"]
        hub.tailer.catch_up()
        (row,) = statistics(hub.engine, ["accountability_persons"], YIDU)
        assert row.values == {"accountability_persons": 5}
        report = audit(log_records(hub.url))
        assert report.findings == []  # nothing was tampered with
    finally:
        hub.close()
