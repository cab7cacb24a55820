"""Kafka-direct events whose checks depend on another partition: the figures a replay rebuilds
must be the live read model's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from duhub.log.kafka import KafkaLog, KafkaSpec
from duhub.readmodel.engine import open_engine
from duhub.readmodel.statistics import statistics
from duhub.readmodel.writer import PositionConflict
from duhub.v1 import events_pb2 as pb
from services.aggregate import apply as apply_module
from services.aggregate.apply import BatchApplier
from services.aggregate.embedded import LogTailer
from services.aggregate.replay import replay
from services.aggregate.verify import compare_with_live
from services.ingest.ingestor import Ingestor
from tests.infra import fresh_database, kafka_log_url
from tests.unit.builders import (
    CITY,
    YIDU,
    YIDU_V1,
    Clock,
    accountability,
    at,
    hierarchy,
    problem,
    rectify,
    unit,
)


@pytest.fixture
def kafka3() -> Iterator[KafkaLog]:
    log = KafkaLog(KafkaSpec.parse(kafka_log_url(partitions=3)))
    yield log
    log.close()


def _engine(path: Path) -> Engine:
    return open_engine(f"sqlite:///{path}")


def _live(log: KafkaLog, path: Path) -> tuple[Engine, Ingestor, LogTailer]:
    """A read model on `path` holding the reference hierarchy, its ingest and its tailer."""
    engine = _engine(path)
    ingest = Ingestor(log, engine, Clock())
    ingest.publish(hierarchy(), allow_reference=True)
    tailer = LogTailer(log, engine)
    tailer.catch_up()
    return engine, ingest, tailer


def _send_direct(log: KafkaLog, *events: pb.Event) -> list[int]:
    """Publish events straight to the topic (Kafka-direct), keyed by their source; return
    the partition each landed in."""
    producer = KafkaProducer(bootstrap_servers=log.spec.bootstrap, acks="all")
    try:
        return [
            producer.send(log.spec.topic, key=e.source.encode(), value=e.SerializeToString())
            .get(timeout=30)
            .partition
            for e in events
        ]
    finally:
        producer.close()


def test_replay_of_kafka_direct_events_gives_the_live_figures(
    kafka3: KafkaLog, tmp_path: Path
) -> None:
    # With 3 partitions the reference hierarchy (key 'reference') lands in partition 2 and
    # county 420581's records in partition 0: a replay reads partition 0 first.
    live, _, tailer = _live(kafka3, tmp_path / "live.db")
    direct = accountability(YIDU, 3, event_id="direct-1", source=YIDU, seq=1)
    assert _send_direct(kafka3, direct) == [0]
    tailer.catch_up()  # live: accepted, the county was registered long before

    rebuilt = _engine(tmp_path / "replay.db")
    replay(kafka3, rebuilt)
    found = compare_with_live(kafka3, rebuilt, live, wait_s=5)
    assert found.equal, found.differing_figures


def test_a_kafka_direct_event_naming_a_unit_registered_before_it_is_accepted(
    tmp_path: Path,
) -> None:
    """The city registers a township (through ingest), then its county publishes an event for
    it straight to Kafka: the county's partition (2 of 4) is read before the city's (3)."""
    log = KafkaLog(KafkaSpec.parse(kafka_log_url(partitions=4)))
    try:
        live, ingest, tailer = _live(log, tmp_path / "live.db")
        township = unit("420581199", YIDU, pb.LEVEL_TOWNSHIP, event_id="t", source=CITY, seq=1)
        assert ingest.publish([township])[0].reason == ""

        direct = accountability("420581199", 4, event_id="direct-t", source=YIDU, seq=1)
        assert _send_direct(log, direct) == [2]
        tailer.catch_up()

        figures = statistics(live, ["accountability_persons"], YIDU)[0]
        assert figures.values == {"accountability_persons": 4}
        rebuilt = _engine(tmp_path / "replay.db")
        replay(log, rebuilt)
        assert compare_with_live(log, rebuilt, live, wait_s=5).equal
    finally:
        log.close()


def test_a_kafka_direct_event_naming_an_unknown_unit_still_goes_to_the_dead_letters(
    kafka3: KafkaLog, tmp_path: Path
) -> None:
    live, _, tailer = _live(kafka3, tmp_path / "live.db")
    _send_direct(kafka3, accountability("420581999", 4, event_id="direct-x", source=YIDU, seq=1))
    tailer.catch_up()
    with live.connect() as conn:
        reasons = [r[0] for r in conn.exec_driver_sql("SELECT reason FROM dead_letters")]
    assert reasons == [
        "accountability_imposed.unit_id: unknown unit '420581999': register it first"
    ]
    rebuilt = _engine(tmp_path / "replay.db")
    replay(kafka3, rebuilt)
    assert compare_with_live(kafka3, rebuilt, live, wait_s=5).equal


def test_two_workers_never_rectify_one_problem_twice(tmp_path: Path) -> None:
    """Rectifications of one problem by the city and by its county lie in two partitions,
    which two workers fold at the same time (each before the other commits)."""
    log = KafkaLog(KafkaSpec.parse(kafka_log_url(partitions=4)))
    with fresh_database() as db_url:
        engine = open_engine(db_url)
        try:
            ingest = Ingestor(log, engine, Clock())
            ingest.publish(hierarchy(), allow_reference=True)
            found = ingest.publish([problem("P1", YIDU_V1, event_id="found", source=YIDU, seq=1)])
            assert found[0].reason == ""
            LogTailer(log, engine).catch_up()

            partitions = _send_direct(
                log,
                *(
                    rectify(
                        "P1",
                        event_id=f"fix-{source}",
                        source=source,
                        seq=2,
                        occurred_at=at("2022-11-05"),
                    )
                    for source in (CITY, YIDU)
                ),
            )
            assert len(set(partitions)) == 2  # 420500 -> 3, 420581 -> 2 of 4

            # Two workers, one partition each: both fold before either one commits (the
            # second worker folds while the first one's batch is written behind).
            workers = [BatchApplier(open_engine(db_url)) for _ in partitions]
            prepared = [
                w.prepare(log.read(p, w.positions.get(p, 0), 10))
                for w, p in zip(workers, partitions, strict=True)
            ]
            for w, p in zip(workers, prepared, strict=True):
                try:
                    w.write(p)
                except (PositionConflict, IntegrityError):
                    w.apply(p.records)  # what a worker does on a conflict: apply again
            for w in workers:
                w.engine.dispose()

            figures = statistics(engine, ["problems_rectified", "problems_open"], CITY)[0]
            assert figures.values == {"problems_rectified": 1, "problems_open": 0}
        finally:
            engine.dispose()
            log.close()


def test_a_replay_from_a_time_keeps_what_came_before_it_that_had_to_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`replay --from-time`: a record before the moment that waits for another partition's
    event must still be applied before those after the moment (here the county's village,
    whose township the city registered in a partition read later)."""
    # A record left waiting would wait 300 s before it is given up: not in a test.
    monkeypatch.setattr(apply_module, "BLOCK_TIMEOUT_S", 2.0)
    log = KafkaLog(KafkaSpec.parse(kafka_log_url(partitions=4)))
    try:
        clock = Clock()
        live = _engine(tmp_path / "live.db")
        ingest = Ingestor(log, live, clock)
        ingest.publish(hierarchy(), allow_reference=True)  # partition 2, as 420581's
        township, village = "420581199", "420581199201"
        published = [
            unit(township, YIDU, pb.LEVEL_TOWNSHIP, event_id="t", source=CITY, seq=1),  # 3
            unit(village, township, pb.LEVEL_VILLAGE, event_id="v", source=YIDU, seq=1),  # 2
            accountability(YIDU, 2, event_id="a", source=YIDU, seq=2),
            problem("P1", village, event_id="p", source=YIDU, seq=3),
        ]
        for e in published:
            clock.now += 10**9
            assert ingest.publish([e])[0].reason == ""
        moment = clock.now - 2 * 10**9 + 1  # after the village, before the accountability

        since = _engine(tmp_path / "since.db")
        replay(log, since, since_ns=moment)
        figures = statistics(since, ["accountability_persons", "problems_found"], YIDU)[0]
        assert figures.values == {"accountability_persons": 2, "problems_found": 1}
    finally:
        log.close()
