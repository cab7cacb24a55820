"""Kafka-direct producers may be transactional (README, Kafka-direct publishing): records of a
transaction they abort were never published, and must never be counted. The hub reads its
topic `read_committed`, so it sees a partition up to its last stable offset: the records of
committed transactions and of plain producers, in log order, and none of an aborted one.

Before, every reader read `read_uncommitted` (kafka-python's default): an aborted transaction's
events were applied and counted, by the aggregate worker, by `duhub up` and by replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import Engine

from duhub.audit.chain import audit
from duhub.audit.records import log_records
from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.metrics import lag_collector
from duhub.readmodel.engine import open_engine
from duhub.readmodel.statistics import statistics
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from services.aggregate.driver import ContiguousDriver
from services.aggregate.embedded import LogTailer
from services.aggregate.replay import replay
from services.ingest.ingestor import Ingestor
from tests.e2e.hubproc import serve, stat_values
from tests.infra import fresh_database, kafka_log_url
from tests.integration import scale
from tests.unit.builders import YIDU, Clock, accountability, hierarchy

pytestmark = [pytest.mark.kafka]

PERSONS = ["accountability_persons"]


class County:
    """A county system publishing Kafka-direct with a transactional producer."""

    def __init__(self, spec: KafkaSpec, source: str = YIDU) -> None:
        self.spec, self.source = spec, source
        self.producer = KafkaProducer(
            bootstrap_servers=spec.bootstrap,
            transactional_id=f"county-{source}-{spec.topic}",
            enable_idempotence=True,
            acks="all",
        )
        self.producer.init_transactions()
        self.committed = KafkaConsumer(
            bootstrap_servers=spec.bootstrap, group_id=None, isolation_level="read_committed"
        )

    def begin(self, events: Sequence[pb.Event]) -> list[int]:
        """Open a transaction and write `events` in it (on the broker, not yet committed);
        return their offsets."""
        self.producer.begin_transaction()
        sent = [
            self.producer.send(
                self.spec.topic, key=self.source.encode(), value=e.SerializeToString()
            )
            for e in events
        ]
        self.producer.flush()  # on the broker: an abort now leaves them there, aborted
        return [f.get(timeout=30).offset for f in sent]

    def abort(self, events: Sequence[pb.Event]) -> list[int]:
        offsets = self.begin(events)
        self.producer.abort_transaction()
        self.ended(offsets[-1])
        return offsets

    def commit(self, events: Sequence[pb.Event]) -> list[int]:
        offsets = self.begin(events)
        self.producer.commit_transaction()
        self.ended(offsets[-1])
        return offsets

    def ended(self, last: int) -> None:
        """Wait until the transaction's marker is in the partition: the producer's commit or
        abort returns before the coordinator wrote it, and until then the partition's last
        stable offset stays at the transaction's start."""
        tp = TopicPartition(self.spec.topic, 0)
        deadline = time.monotonic() + 30
        while self.committed.end_offsets([tp])[tp] < last + 2:
            assert time.monotonic() < deadline, "the transaction's marker was never written"
            time.sleep(0.05)

    def close(self) -> None:
        self.producer.close(timeout=10)
        self.committed.close()


def direct(persons: int, n: int, first: int = 1) -> list[pb.Event]:
    return [
        accountability(YIDU, persons, event_id=f"direct-{i}", source=YIDU, seq=i)
        for i in range(first, first + n)
    ]


def persons(engine: Engine) -> int:
    return statistics(engine, PERSONS, YIDU)[0].values.get(PERSONS[0], 0)


def lag(log: KafkaLog, engine: Engine) -> dict[str, float]:
    (family,) = lag_collector(log, lambda: read_positions(engine)).collect()  # as served
    return {s.labels["partition"]: s.value for s in family.samples}


@pytest.fixture
def kafka1() -> Iterator[KafkaLog]:
    log = KafkaLog(KafkaSpec.parse(kafka_log_url(partitions=1)))
    yield log
    log.close()


def url_of(log: KafkaLog) -> str:
    spec = log.spec
    return f"kafka://{spec.bootstrap}?topic={spec.topic}&key={spec.key_file}"


def _live(log: KafkaLog, path: Path) -> tuple[Engine, Ingestor, LogTailer]:
    """A read model on `path` holding the reference hierarchy, its ingest and its tailer."""
    engine = open_engine(f"sqlite:///{path}")
    ingest = Ingestor(log, engine, Clock())
    ingest.publish(hierarchy(), allow_reference=True)
    tailer = LogTailer(log, engine)
    tailer.catch_up()
    return engine, ingest, tailer


def test_the_aggregate_worker_counts_only_committed_transactions(tmp_path: Path) -> None:
    """The services apart on Kafka and PostgreSQL: an aborted transaction of 5 persons, then
    a committed one of 3 (its commit marker last in the partition)."""
    log_url = kafka_log_url(partitions=1)
    spec = KafkaSpec.parse(log_url)
    with fresh_database() as db_url:
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        procs = [serve("aggregate", *opts), serve("ingest", *opts), serve("query", *opts)]
        ingest, query = procs[1], procs[2]
        county = County(spec)
        try:
            # Through ingest first, so the reference hierarchy is in and applied.
            results = scale.publish(ingest.address, [scale.accountability("420582", 1, 2)])
            scale.wait_applied(query.address, scale.ends_of(results))

            county.abort(direct(5, 1, first=1))
            (offset,) = county.commit(direct(3, 1, first=2))
            scale.wait_applied(query.address, {0: offset + 1})
            # Once more, by the time ingest's next record is applied (it lies past both).
            results = scale.publish(ingest.address, [scale.accountability("420582", 2, 1)])
            scale.wait_applied(query.address, scale.ends_of(results))

            assert stat_values(query.address, "--metric", PERSONS[0], "--scope", YIDU) == {
                PERSONS[0]: 3
            }
            assert stat_values(query.address, "--metric", PERSONS[0], "--scope", "420582") == {
                PERSONS[0]: 3
            }
        finally:
            county.close()
            for p in procs:
                p.stop()

        # `duhub replay` of the log counts the same.
        log = KafkaLog(spec, create=False)
        rebuilt = open_engine(f"sqlite:///{tmp_path / 'replay.db'}")
        try:
            replay(log, rebuilt)
            assert persons(rebuilt) == 3
        finally:
            log.close()
            rebuilt.dispose()


def test_an_aborted_transaction_is_neither_counted_nor_waited_for(
    kafka1: KafkaLog, tmp_path: Path
) -> None:
    """`duhub up --log kafka://…` (the tailer) and replay. The partition ends with an aborted
    transaction longer than a few markers: a read_committed reader never gets a record past
    the last committed one, and the hub must count itself caught up all the same."""
    live, _, tailer = _live(kafka1, tmp_path / "live.db")
    county = County(kafka1.spec)
    try:
        county.abort(direct(5, 1, first=1))
        county.commit(direct(3, 1, first=2))
        county.abort(direct(7, 100, first=3))  # the tail: 100 records and the abort marker
    finally:
        county.close()
    tailer.catch_up()
    assert persons(live) == 3
    with live.connect() as conn:
        assert list(conn.exec_driver_sql("SELECT reason FROM dead_letters")) == []

    # Caught up: no lag, a restarted ingest opens, the worker's watchdog sees no work.
    assert lag(kafka1, live) == {"0": 0}
    ingest = Ingestor(KafkaLog(kafka1.spec, create=False), live, Clock())
    threading.Thread(target=ingest.wait_until_caught_up, daemon=True).start()
    assert ingest.ready.wait(20), "ingest never opened: it waits for the aborted records"
    ingest.log.close()
    driver = ContiguousDriver(kafka1, live)
    assert not driver.stalled({0}, 0.0)
    driver.writer.close()

    rebuilt = open_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    replay(kafka1, rebuilt)
    assert persons(rebuilt) == 3
    assert read_positions(rebuilt) == read_positions(live)

    # `duhub audit verify` walks what was published: the hierarchy and the committed event.
    report = audit(log_records(url_of(kafka1)))
    assert (report.records, report.ok) == (len(hierarchy()) + 1, True)


def test_an_open_transaction_holds_back_what_follows_it_until_it_ends(
    kafka1: KafkaLog, tmp_path: Path
) -> None:
    """While a producer's transaction is open, the hub reads its partition up to where the
    transaction starts (its last stable offset), as any read_committed consumer does: what
    lies before is applied and counts as all there is (catch-up ends, ingest opens, no lag),
    what follows (here an event published through ingest) waits for the transaction's end."""
    live, ingest, tailer = _live(kafka1, tmp_path / "live.db")
    county = County(kafka1.spec)
    try:
        (first,) = county.begin(direct(5, 1, first=1))
        result = ingest.publish([accountability(YIDU, 2, event_id="ingest-1", source=YIDU, seq=9)])
        assert result[0].offset > first

        started = time.monotonic()
        tailer.catch_up()  # ends: nothing stable past the open transaction
        assert time.monotonic() - started < 15
        assert read_positions(live) == {0: first}
        assert persons(live) == 0
        assert lag(kafka1, live) == {"0": 0}
        restarted = Ingestor(KafkaLog(kafka1.spec, create=False), live, Clock())
        threading.Thread(target=restarted.wait_until_caught_up, daemon=True).start()
        assert restarted.ready.wait(20), "ingest waits for a transaction it has no part in"
        restarted.log.close()
        rebuilt = open_engine(f"sqlite:///{tmp_path / 'during.db'}")
        replay(kafka1, rebuilt)  # ends, at the same place
        assert read_positions(rebuilt) == {0: first}

        county.producer.commit_transaction()
        county.ended(first)
    finally:
        county.close()
    tailer.catch_up()
    assert persons(live) == 5 + 2
    assert read_positions(live) == {0: result[0].offset + 1}
