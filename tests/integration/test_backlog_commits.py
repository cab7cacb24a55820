"""A Faust worker through a backlog on real Kafka and PostgreSQL: partitions wait for the
city's (units, campaigns), the worker reads lagging partitions straight from the log and has
the consumer seek past them, and the consumer group's committed offsets still end where the
read model's positions are (a restarted worker resumes there, not at the backlog's start)."""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import create_engine, text

from bench.events import stored_records
from duhub.log.kafka import INGEST_ORIGIN, ORIGIN_HEADER, KafkaSpec, ensure_topics
from tests.e2e.hubproc import serve
from tests.infra import fresh_database, kafka_log_url

EVENTS = 20_000
PARTITIONS = 6


def fill(spec: KafkaSpec) -> int:
    ensure_topics(spec)
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all", linger_ms=5)
    it, _ = stored_records(EVENTS, seed=5, prefix="blc")
    n = 0
    for key, value in it:
        producer.send(spec.topic, key=key, value=value, headers=[(ORIGIN_HEADER, INGEST_ORIGIN)])
        n += 1
    producer.flush()
    producer.close()
    return n


def positions(db_url: str) -> dict[int, int]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT partition, next_offset FROM log_positions"))
            return {int(p): int(o) for p, o in rows}
    except Exception:  # noqa: BLE001 - the worker has not created the tables yet
        return {}
    finally:
        engine.dispose()


def committed(spec: KafkaSpec) -> dict[int, int | None]:
    consumer = KafkaConsumer(
        bootstrap_servers=spec.bootstrap,
        group_id=f"duhub-aggregate-{spec.topic}",
        enable_auto_commit=False,
    )
    try:
        return {p: consumer.committed(TopicPartition(spec.topic, p)) for p in range(PARTITIONS)}
    finally:
        consumer.close()


def test_committed_offsets_follow_the_read_model_through_a_backlog(tmp_path: Path) -> None:
    log_url = kafka_log_url(partitions=PARTITIONS)
    spec = KafkaSpec.parse(log_url)
    total = fill(spec)
    with fresh_database() as db_url:
        worker = serve("aggregate", "--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        try:
            deadline = time.monotonic() + 600
            while sum(positions(db_url).values()) < total and time.monotonic() < deadline:
                time.sleep(0.5)
            at = positions(db_url)
            assert sum(at.values()) == total
            # Faust commits every 5 s; the last records' offsets come with the next commit.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                got = committed(spec)
                if all(got.get(p) == o for p, o in at.items()):
                    break
                time.sleep(1)
            assert {p: got.get(p) for p in at} == at
            log = "".join(worker.output)
        finally:
            worker.stop()
        # The backlog made partitions wait, so the worker did read ahead and seek.
        assert "records ahead of the consumer" in log
