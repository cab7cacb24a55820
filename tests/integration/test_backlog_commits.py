"""A Faust worker through a backlog on real Kafka and PostgreSQL: partitions wait for the
city's (units, campaigns), the worker reads its partitions itself from the read model's
positions, and the consumer group's committed offsets still end where the read model's
positions are (ops tools read the group's lag from them). And when the group's commits are
ahead of the read model, every event is still counted."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sqlalchemy import create_engine, text

from bench.events import stored_records
from duhub.log.kafka import KafkaSpec, ensure_topics
from duhub.log.origin import ingest_headers
from tests.e2e.hubproc import DuhubProcess, serve
from tests.infra import fresh_database, kafka_log_url

EVENTS = 20_000
PARTITIONS = 6


def fill(spec: KafkaSpec) -> int:
    ensure_topics(spec)
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all", linger_ms=5)
    it, _ = stored_records(EVENTS, seed=5, prefix="blc")
    n = 0
    for key, value in it:
        producer.send(
            spec.topic, key=key, value=value, headers=ingest_headers(spec.origin_key(), value)
        )
        n += 1
    producer.flush()
    producer.close()
    return n


def query(db_url: str, sql: str) -> dict[int, int]:
    """Return the rows of `sql` (partition, count) as a dict, {} before the tables exist."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            return {int(p): int(o) for p, o in conn.execute(text(sql))}
    except Exception:  # noqa: BLE001 - the worker has not created the tables yet
        return {}
    finally:
        engine.dispose()


def positions(db_url: str) -> dict[int, int]:
    return query(db_url, "SELECT partition, next_offset FROM log_positions")


# Well under the 600 s a test may take (20,000 events take ~30 s), so a stuck worker fails
# here with its output, not as pytest-timeout's thread dump.
CATCH_UP_S = 240


def tail(worker: DuhubProcess, lines: int = 40) -> str:
    return "".join(worker.output[-lines:])


def wait_for_positions(worker: DuhubProcess, db_url: str, total: int) -> dict[int, int]:
    """Wait for the read model's positions to sum to `total`; fail at once if `worker` exits."""
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        at = positions(db_url)
        if sum(at.values()) >= total:
            return at
        code = worker.proc.poll()
        assert code is None, f"the worker exited ({code}) at {at}:\n{tail(worker)}"
        assert time.monotonic() < deadline, f"at {at} after {CATCH_UP_S} s:\n{tail(worker)}"
        time.sleep(0.5)


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
            at = wait_for_positions(worker, db_url, total)
            assert sum(at.values()) == total
            # Committed every 5 s; the last records' offsets come with the next commit.
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
        # Read by the worker's own reader, from the group's assignment (all partitions: the
        # only worker), while partitions waited for the city's.
        assert f"reading partitions {list(range(PARTITIONS))}" in log
        assert re.search(r"waiting: \[\d", log)


def commit_ahead(spec: KafkaSpec, fraction: float) -> dict[int, int]:
    """Commit the worker's group at `fraction` of each partition, as a group that ran before
    leaves it for a read model started afresh; return the offsets committed."""
    consumer = KafkaConsumer(
        bootstrap_servers=spec.bootstrap,
        group_id=f"duhub-aggregate-{spec.topic}",
        enable_auto_commit=False,
    )
    try:
        parts = [TopicPartition(spec.topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(parts)
        ahead = {tp: OffsetAndMetadata(int(ends[tp] * fraction), "", -1) for tp in parts}
        consumer.commit(ahead)
        return {tp.partition: m.offset for tp, m in ahead.items()}
    finally:
        consumer.close()


# Part way (the consumer delivers from there and is sought back), or at the log's end (it
# delivers nothing at all: the worker must notice on its own).
@pytest.mark.parametrize("fraction", [0.6, 1.0])
def test_every_event_is_counted_when_the_groups_commits_are_ahead(
    tmp_path: Path, fraction: float
) -> None:
    log_url = kafka_log_url(partitions=PARTITIONS)
    spec = KafkaSpec.parse(log_url)
    total = fill(spec)
    ahead = commit_ahead(spec, fraction)
    assert sum(ahead.values()) > total // 2  # (a partition no county hashes to stays empty)
    with fresh_database() as db_url:
        worker = serve("aggregate", "--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        try:
            at = wait_for_positions(worker, db_url, total)
            log = "".join(worker.output)
        finally:
            worker.stop()
        assert sum(at.values()) == total
        # Read from the read model's positions, not restarted by the watchdog.
        assert "aggregate worker stops" not in log
        # Each event counted once, none passed over: every offset below a partition's
        # position has its event in the read model (the fill has no duplicates).
        seen = query(db_url, "SELECT partition, count(*) FROM events_seen GROUP BY partition")
        assert seen == at
        assert query(db_url, "SELECT 0, count(*) FROM dead_letters") == {0: 0}
