"""`duhub replay` of a Kafka log continues into its target once the log grew, also into a
partition that was empty: a tester's replay of examples/quickstart.jsonl (partitions 2, 3 and
6) was refused once another county's events reached partition 0, "--into: holds a replay of
another log", exit 2, before 2026-12-06 (the target knew the log by the first record of its
lowest partition that had any). A topic made again, whose first records differ or lie in
other partitions, is still another log."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from duhub.bootstrap import open_log
from duhub.log.base import EventLog
from duhub.log.kafka import KafkaSpec
from duhub.readmodel.engine import open_engine
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor
from tests.infra import fresh_database, kafka_log_url
from tests.integration.chaos import remake_topic
from tests.unit.builders import CITY, DANG, DANG_V1, YIDU_V1, Clock, at, hierarchy, kinds, visit
from tests.unit.test_ops_cli import duhub

pytestmark = [pytest.mark.kafka]

# With 4 partitions the reference registrations (source "reference") and the city's own
# events land in partitions 2 and 3; DANG's in partition 0, empty until it publishes.
PARTITIONS = 4


class Hub:
    """Ingest and the live read model's applier on a Kafka topic, in this process."""

    def __init__(self, url: str, data: Path, now: int) -> None:
        self.url, self.data = url, data
        self.log: EventLog = open_log(url)
        self.engine = open_engine(f"sqlite:///{data / 'readmodel.db'}")
        self.clock = Clock(now)
        self.ingestor = Ingestor(self.log, self.engine, self.clock)

    def publish(self, events: list, *, reference: bool = False) -> None:  # type: ignore[type-arg]
        self.clock.now += 10**9
        done = self.ingestor.publish(events, allow_reference=reference)
        assert kinds(done) == ["accepted"] * len(events), [r.reason for r in done]
        LogTailer(self.log, self.engine).catch_up()

    def filled(self) -> set[int]:
        return {p for p, end in self.log.end_offsets().items() if end}

    def close(self) -> None:
        self.log.close()
        self.engine.dispose()


@contextmanager
def kafka_hub(tmp_path: Path, now: int = at("2023-02-01")) -> Iterator[Hub]:
    data = tmp_path / "data"
    data.mkdir()
    hub = Hub(kafka_log_url(partitions=PARTITIONS), data, now)
    try:
        yield hub
    finally:
        hub.close()


def city_visits(first: int, n: int) -> list:  # type: ignore[type-arg]
    return [visit(YIDU_V1, event_id=f"c{s}", seq=s, source=CITY) for s in range(first, first + n)]


def replay(hub: Hub, into: str, *more: str) -> subprocess.CompletedProcess[str]:
    return duhub(
        "replay", "--log", hub.url, "--db", f"sqlite:///{hub.data / 'readmodel.db'}",
        "--data-dir", str(hub.data), "--into", into, *more,
    )  # fmt: skip


def replayed_once(hub: Hub, into: str) -> subprocess.CompletedProcess[str]:
    """Publish the hierarchy and three of the city's visits (partitions 2 and 3), and replay
    them into `into`: the replay later runs continue, or are refused."""
    hub.publish(hierarchy(), reference=True)
    hub.publish(city_visits(1, 3))
    first = replay(hub, into)
    assert first.returncode == 0, first.stdout + first.stderr
    return first


@pytest.fixture(params=["sqlite", "postgresql"])
def into(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'replay.db'}"
    else:
        with fresh_database() as url:
            yield url


def test_a_replay_continues_once_the_log_grew_into_an_empty_partition(
    tmp_path: Path, into: str
) -> None:
    with kafka_hub(tmp_path) as hub:
        first = replayed_once(hub, into)
        assert hub.filled() == {2, 3}
        assert "equal: the live figures are exactly what the log gives" in first.stdout
        before = sum(hub.log.end_offsets().values())

        # Another county's events reach partition 0, below every partition replayed.
        hub.publish([visit(DANG_V1, event_id="d1", seq=1, source=DANG)])
        hub.publish(city_visits(4, 2))
        assert hub.filled() == {0, 2, 3}
        again = replay(hub, into)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "equal: the live figures are exactly what the log gives" in again.stdout
        # Continued from its positions: only the records appended since.
        grown = sum(hub.log.end_offsets().values()) - before
        assert f"replayed {grown} log records" in again.stdout, again.stdout

        # And on from there, as often as it grows.
        hub.publish([visit(DANG_V1, event_id="d2", seq=2, source=DANG)])
        third = replay(hub, into)
        assert third.returncode == 0, third.stdout + third.stderr
        assert "replayed 1 log records" in third.stdout, third.stdout


def test_a_target_of_the_earlier_version_continues_once_the_log_grew(tmp_path: Path) -> None:
    # Before 2026-12-06 a target kept the first record of the log's lowest partition that had
    # any ("2:OFFSET:SHA256"), and no other: that replay continues too.
    into = f"sqlite:///{tmp_path / 'replay.db'}"
    with kafka_hub(tmp_path) as hub:
        replayed_once(hub, into)
        (record,) = hub.log.read(2, 0, 1)
        earlier = f"2:{record.offset}:{hashlib.sha256(record.value).hexdigest()}"
        target = open_engine(into)
        with target.begin() as conn:
            kept = text("UPDATE replay_cut SET value = :v WHERE name = 'log'")
            assert conn.execute(kept, {"v": earlier}).rowcount == 1
        target.dispose()

        hub.publish([visit(DANG_V1, event_id="d1", seq=1, source=DANG)])
        again = replay(hub, into)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "equal: the live figures are exactly what the log gives" in again.stdout
        assert "replayed 1 log records" in again.stdout, again.stdout


@pytest.mark.parametrize(
    ("made_again", "why"),
    [
        ("other first records", "the first record of partition 2 is not this log's"),
        ("other partitions", "its partition 2 held records; this log's holds none"),
    ],
)
def test_a_replay_does_not_continue_into_a_target_of_the_topic_before_it_was_made_again(
    tmp_path: Path, made_again: str, why: str
) -> None:
    into = f"sqlite:///{tmp_path / 'replay.db'}"
    with kafka_hub(tmp_path) as hub:
        replayed_once(hub, into)
        hub.close()
        remake_topic(KafkaSpec.parse(hub.url))
        (tmp_path / "again").mkdir()
        other = Hub(hub.url, tmp_path / "again", at("2023-03-01"))
        try:
            if made_again == "other first records":  # the same events, stamped later
                other.publish(hierarchy(), reference=True)
                other.publish(city_visits(1, 3))
                assert other.filled() == {2, 3}
            else:  # a Kafka-direct producer's record, in a partition the old topic had empty
                event = visit(DANG_V1, event_id="d1", seq=1, source=DANG)
                other.log.append([(DANG.encode(), event.SerializeToString())])
                assert other.filled() == {0}
            done = replay(other, into, "--no-compare")
            assert done.returncode == 2, done.stdout + done.stderr
            assert f"--into: holds a replay of another log ({why})" in done.stderr, done.stderr
            assert "replayed" not in done.stdout
        finally:
            other.close()
