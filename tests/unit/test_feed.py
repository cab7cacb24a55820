"""The aggregate worker's feed: it reads the partitions the group gives it from the read model's
positions, tries a waiting partition again when nothing else comes, lets go of what it held
for partitions given away, and has the group's offsets follow the read model. The reader
here is a list of records (Kafka's own reading is the integration tests')."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import OffsetOutOfRangeError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from duhub.log.base import LogRecord
from duhub.log.belongs import LogLost
from services.aggregate import driver as driver_module
from services.aggregate.apply import BatchApplier
from services.aggregate.driver import ContiguousDriver
from services.aggregate.feed import COMMIT_INTERVAL_S, RETRY_HELD_S, Feed
from services.aggregate.pauses import RESUME_CHECK_S
from tests.unit.builders import YIDU, YIDU_T1, visit
from tests.unit.test_apply_waits import (
    NoGaps,
    new_village,
    record,
    setup,
    visits,
    visits_counted,
)


class ListReader:
    """Delivers the records of its partitions from where each was told to start."""

    def __init__(self, *records: LogRecord) -> None:
        self.records = list(records)
        self.partitions: set[int] = set()
        self.next: dict[int, int] = {}
        self.assigned: list[tuple[set[int], dict[int, int]]] = []

    def assign(self, partitions: set[int], positions: dict[int, int]) -> None:
        for p in partitions - self.partitions:
            self.next[p] = positions.get(p, 0)
        self.partitions = set(partitions)
        self.assigned.append((set(partitions), dict(positions)))

    def seek(self, offsets: dict[int, int]) -> None:
        self.next.update({p: o for p, o in offsets.items() if p in self.partitions})

    def take(self, limit: int, within_s: float) -> list[LogRecord]:
        out = [
            r
            for r in self.records
            if r.partition in self.partitions and r.offset >= self.next[r.partition]
        ][:limit]
        for r in out:
            self.next[r.partition] = r.offset + 1
        return out


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ListLog(NoGaps):
    """The log the reader reads: a partition delivering after a pause is checked against it
    (the read model's last record there, `Feed._checked`)."""

    def __init__(self, reader: ListReader) -> None:
        self.reader = reader

    def start_offsets(self) -> dict[int, int]:
        return {}

    def read(self, partition: int, offset: int, n: int) -> list[LogRecord]:
        held = self.reader.records
        found = [r for r in held if r.partition == partition and r.offset == offset]
        return found[:1] or super().read(partition, offset, n)


def feed_for(engine: Engine, reader: ListReader, owned: set[int], clock: Clock | None = None):  # type: ignore[no-untyped-def]
    driver = ContiguousDriver(ListLog(reader), engine)  # type: ignore[arg-type]
    commits: list[dict[int, int]] = []
    told: list[set[int]] = []
    feed = Feed(
        driver,
        reader,
        owned=lambda: set(owned),
        on_owned=told.append,
        commit=commits.append,
        clock=clock or Clock(),
    )
    return feed, commits, told


def test_a_partition_gained_is_read_from_where_the_read_model_stands_now(tmp_path) -> None:
    applier = setup(tmp_path)
    every = visits(40)
    reader = ListReader(new_village(), *every)
    owned = {1}
    feed, _, told = feed_for(applier.engine, reader, owned)
    feed.step()
    assert told == [{1}] and feed.driver.applier.positions.get(1) == 1
    # Meanwhile another worker, which had partition 0, applied its first 25 records.
    BatchApplier(applier.engine).apply(every[:25])
    owned.add(0)
    feed.step()
    assert reader.assigned[-1] == ({0, 1}, {0: 25, 1: 1})
    assert told[-1] == {0, 1}
    # Read from 25 on: the first 25 are not folded again (which would fail the positions
    # check and start over), and every visit counts once.
    assert feed.driver.applier.positions[0] == 40
    assert visits_counted(feed.driver.applier) == 40


def test_a_waiting_partition_is_tried_again_and_let_go_when_given_away(
    tmp_path,
) -> None:
    applier = setup(tmp_path)
    every = visits(30)
    reader = ListReader(*every)  # the village they name is not in the log yet
    owned = {0, 1}
    clock = Clock()
    feed, _, _ = feed_for(applier.engine, reader, owned, clock)
    feed.step()
    assert len(feed.driver.held[0]) == 30
    reader.records.append(new_village())
    clock.now += RETRY_HELD_S
    feed.step()  # the village comes, the held head is tried and the rest follows
    assert feed.driver.applier.positions[0] == 30 and not feed.driver.holding()
    # Held records of a partition given away are its new owner's.
    later = [
        record(0, 30 + i, visit(f"{YIDU_T1}-later", event_id=f"w{i}", source=YIDU, seq=90 + i))
        for i in range(5)
    ]
    reader.records += later
    feed.step()
    assert len(feed.driver.held[0]) == 5
    owned.discard(0)
    feed.step()
    assert 0 not in feed.driver.held and reader.partitions == {1}


def test_a_partition_holding_all_it_may_is_not_read_until_it_moves(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(driver_module, "HOLD_LIMIT", 10)
    applier = setup(tmp_path)
    reader = ListReader(*visits(30))  # the village they name is not in the log yet
    clock = Clock()
    feed, _, _ = feed_for(applier.engine, reader, {0, 1}, clock)
    feed.step()
    assert [r.offset for r in feed.driver.held[0]] == list(range(10))
    feed.step()
    # Not read while it holds all it may: what it would deliver is not kept anyway.
    assert reader.partitions == {1} and len(feed.driver.held[0]) == 10
    reader.records.append(new_village())
    clock.now += RETRY_HELD_S
    feed.step()  # the village comes and what was held follows it
    assert feed.driver.applier.positions[0] == 10 and not feed.driver.held.get(0)
    feed.step()  # read again from there on
    assert reader.assigned[-1] == ({0, 1}, {0: 10, 1: 1})
    assert feed.driver.applier.positions[0] == 30
    assert visits_counted(feed.driver.applier) == 30


def test_the_groups_offsets_follow_the_read_model_every_few_seconds(tmp_path) -> None:
    applier = setup(tmp_path)
    reader = ListReader(new_village(), *visits(10))
    clock = Clock()
    feed, commits, _ = feed_for(applier.engine, reader, {0, 1}, clock)
    feed.step()
    assert commits == []  # not yet: every COMMIT_INTERVAL_S
    clock.now += COMMIT_INTERVAL_S
    feed.step()
    assert commits == [{0: 10, 1: 1}]
    clock.now += COMMIT_INTERVAL_S
    feed.step()
    assert commits == [{0: 10, 1: 1}]  # nothing moved: nothing committed


class OutOfRange(ListReader):
    """Kafka's answer to a fetch past a partition's end (kafka-python raises it, the worker's
    reader resetting no offset by itself)."""

    def take(self, limit: int, within_s: float) -> list[LogRecord]:
        raise OffsetOutOfRangeError({0: self.next.get(0)})


class EndsAt(NoGaps):
    def __init__(self, ends: dict[int, int]) -> None:
        self.ends = ends

    def end_offsets(self) -> dict[int, int]:
        return dict(self.ends)


def test_a_log_that_ends_before_the_read_model_stops_the_feed(tmp_path) -> None:
    """Before 2026-12-05 the reader went back to the start of a partition whose fetch offset
    lay past its end (a topic made again under the worker), and the driver took every new
    record for the one applied at its offset: none was ever counted, with no word said."""
    applier = setup(tmp_path)
    BatchApplier(applier.engine).apply([new_village(), *visits(40)])
    log = EndsAt({0: 40, 1: 1, 2: 99})
    feed = Feed(ContiguousDriver(log, applier.engine), OutOfRange(), owned=lambda: {0, 1})  # type: ignore[arg-type]
    with pytest.raises(OffsetOutOfRangeError):  # not for a lost log: the error as it came
        feed.step()
    feed.check_log()  # the watchdog's look: nothing lost
    log.ends[0] = 3  # the broker lost its data; 3 records since
    with pytest.raises(LogLost, match=r"partition 0 at 40, the log ends at 3\)"):
        feed.step()
    with pytest.raises(LogLost, match=r"partition 0 at 40, the log ends at 3\)"):
        feed.check_log()


def test_a_worker_holding_no_partition_still_sees_the_log_lost(tmp_path) -> None:
    """A topic deleted under the group takes every partition from its workers until it is made
    again and the group rebalances (minutes, on a loaded host). The watchdog's look asked only
    for the partitions held, so a worker holding none never looked, and took the new topic's
    records for applied ones once they were given back. It now compares every position the
    read model holds."""
    applier = setup(tmp_path)
    BatchApplier(applier.engine).apply([new_village(), *visits(40)])
    log = EndsAt({0: 40, 1: 1, 2: 99})
    feed = Feed(ContiguousDriver(log, applier.engine), OutOfRange(), owned=lambda: set())  # type: ignore[arg-type]
    feed.check_log()  # nothing lost
    log.ends[0] = 0  # the topic made again, empty
    with pytest.raises(LogLost, match=r"partition 0 at 40, the log ends at 0\)"):
        feed.check_log()


def test_a_partition_delivering_after_a_pause_from_a_log_made_again_stops_the_feed(
    tmp_path,
) -> None:
    """The topic made again while the worker idled, and grown past its position before the
    worker looked: the records come at the offsets that follow. Before 2026-12-05 they were
    applied as the old log's next ones, and those of the new log below the position never."""
    applier = setup(tmp_path)
    every = visits(40)
    reader = ListReader(new_village(), *every[:30])
    clock = Clock()
    feed, _, _ = feed_for(applier.engine, reader, {0, 1}, clock)
    feed.step()
    assert feed.driver.applier.positions[0] == 30
    # Busy: delivering again within RESUME_CHECK_S, it is not looked at (nor is the log).
    reader.records.append(every[30])
    clock.now += RESUME_CHECK_S / 2
    feed.step()
    assert feed.driver.applier.positions[0] == 31
    # Paused past RESUME_CHECK_S, then another log's records (the same offsets, other events).
    clock.now += RESUME_CHECK_S
    other = [
        record(0, i, visit(f"{YIDU_T1}-other", event_id=f"o{i}", source=YIDU, seq=700 + i))
        for i in range(40)
    ]
    reader.records = [r for r in reader.records if r.partition != 0] + other
    with pytest.raises(
        LogLost,
        match=r"made again under the running service \(partition 0: the record it applied "
        r"last, at offset 30, is not the log's: the log holds another there",
    ):
        feed.step()
    assert feed.driver.applier.positions[0] == 31  # nothing of the new log applied


def test_a_partition_delivering_after_a_pause_from_the_same_log_goes_on(tmp_path) -> None:
    applier = setup(tmp_path)
    every = visits(40)
    reader = ListReader(new_village(), *every[:30])
    clock = Clock()
    feed, _, _ = feed_for(applier.engine, reader, {0, 1}, clock)
    feed.step()
    clock.now += 10 * RESUME_CHECK_S
    reader.records += every[30:]
    feed.step()
    assert feed.driver.applier.positions[0] == 40
    assert visits_counted(feed.driver.applier) == 40


def test_a_partition_delivering_after_a_pause_while_the_read_model_is_down_waits_for_it(
    tmp_path, monkeypatch
) -> None:
    """The look at the read model's last record met a PostgreSQL outage and stopped the worker
    ("a batch failed", a traceback), where a batch waits the outage out (CI, 2026-12-05:
    test_worker_stop_outage found no "read model unreachable" line). It now waits as a batch
    does, then looks, then applies."""
    from services.aggregate import apply as apply_module

    applier = setup(tmp_path)
    every = visits(40)
    reader = ListReader(new_village(), *every[:30])
    clock = Clock()
    feed, _, _ = feed_for(applier.engine, reader, {0, 1}, clock)
    feed.step()
    real, calls = apply_module.read_marks, []

    def down_once(engine):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT …", {}, Exception("connection refused"))
        return real(engine)

    monkeypatch.setattr(apply_module, "read_marks", down_once)
    monkeypatch.setattr(apply_module.time, "sleep", lambda s: None)
    clock.now += 10 * RESUME_CHECK_S
    reader.records += every[30:]
    feed.step()
    assert len(calls) == 2  # refused once, then asked again
    assert feed.driver.applier.positions[0] == 40
    assert visits_counted(feed.driver.applier) == 40


def test_a_partition_delivering_after_a_pause_while_the_broker_is_frozen_is_looked_at_later(
    tmp_path, monkeypatch, caplog
) -> None:
    """A broker frozen 45 s (kill -STOP) failed the look at the log, "Failed to get offsets by
    timestamps in 30000 ms", and stopped the worker ("a batch failed"). Its records are now
    put back and looked at again, then applied once, as after a broker's restart."""
    from kafka.errors import KafkaTimeoutError

    from services.aggregate import feed as feed_module

    applier = setup(tmp_path)
    every = visits(40)
    reader = ListReader(new_village(), *every[:30])
    clock = Clock()
    feed, _, _ = feed_for(applier.engine, reader, {0, 1}, clock)
    feed.step()
    log_, calls = feed.driver.kafka, []
    real = log_.start_offsets

    def frozen_once() -> dict[int, int]:
        calls.append(1)
        if len(calls) == 1:
            raise KafkaTimeoutError("Failed to get offsets by timestamps in 30000 ms.")
        return real()

    monkeypatch.setattr(log_, "start_offsets", frozen_once)
    monkeypatch.setattr(feed_module.time, "sleep", lambda s: None)
    clock.now += 10 * RESUME_CHECK_S
    reader.records += every[30:]
    with caplog.at_level(logging.WARNING):
        feed.step()
    assert len(calls) == 1 and feed.driver.applier.positions[0] == 30  # nothing unchecked
    assert "the log cannot be looked at now (KafkaTimeoutError: Failed to get" in caplog.text
    feed.step()
    assert len(calls) == 2  # looked at again, then applied
    assert feed.driver.applier.positions[0] == 40
    assert visits_counted(feed.driver.applier) == 40


def test_a_worker_stopped_while_the_read_model_is_down_says_what_it_gave_up_in_a_line(
    tmp_path, monkeypatch, caplog
) -> None:
    """SIGTERM in a PostgreSQL outage: the worker said only "the last batch failed" and a
    traceback of ~200 lines, never the stop line naming the partitions it gave up (a chaos
    probe, 2026-12-06). It now says why in a line, then the stop line."""
    from services.aggregate import faust_app

    applier = setup(tmp_path)
    reader = ListReader(new_village(), *visits(10))
    feed, _, _ = feed_for(applier.engine, reader, {0, 1})
    feed.step()

    def down() -> None:  # the signal comes while a batch waits for the read model
        feed.stop("SIGTERM")
        raise OperationalError("COMMIT", {}, Exception("connection to server refused\nmore"))

    monkeypatch.setattr(feed, "step", down)
    with caplog.at_level(logging.INFO):
        faust_app._run_feed(feed)
    said = [r.getMessage() for r in caplog.records]
    assert feed.stopped.is_set()
    assert any("read model is unreachable (connection to server refused)" in x for x in said), said
    assert any(
        x.startswith("aggregate worker stops (SIGTERM): gave up partitions [0, 1]") for x in said
    )
    assert not any(r.exc_info for r in caplog.records)


def test_a_worker_retrying_what_it_holds_logs_no_line_for_each_empty_try(tmp_path, caplog) -> None:
    """A worker holding records that wait (another partition's event first) tries them again
    some ten times a second, and logged "folded 0 of 0 records (0 delivered)" at INFO each time
    (a chaos probe: 1.9 MB in 23 minutes). A try that delivered records still says so."""
    applier = setup(tmp_path)
    driver = ContiguousDriver(ListLog(ListReader()), applier.engine)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        driver.handle([new_village(), *visits(5)])
        delivered = [r.getMessage() for r in caplog.records if "folded" in r.getMessage()]
        caplog.clear()
        for _ in range(3):
            driver.handle([])
        idle = [r.getMessage() for r in caplog.records if "folded" in r.getMessage()]
    assert len(delivered) == 1 and delivered[0].startswith("folded 6 of 6 records (6 delivered)")
    assert idle == []
