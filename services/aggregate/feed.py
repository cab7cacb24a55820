"""Feed the driver with what this worker's partitions hold, following the consumer group's
assignment: Faust keeps the membership, the records come by a reader of our own.

Why not through Faust: its per-record delivery (an event object, queues and tasks per
message) and the read-ahead that made up for its pace took about a third of the worker's
time by profile, and every record it delivered had been read again straight from the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from kafka.errors import KafkaError, LogTruncationError, OffsetOutOfRangeError

from duhub.log.base import LogRecord
from duhub.log.belongs import ends_covering, refuse_lost, refuse_replaced_at
from duhub.readmodel.writer import read_positions
from services.aggregate.driver import ContiguousDriver
from services.aggregate.pauses import Pauses

log = logging.getLogger(__name__)

# Up to this many records per batch: a backlog is applied in big transactions (fewer commits,
# more rollup keys shared); live traffic waits at most TAKE_WITHIN_S to fill one.
BATCH = 10_000
TAKE_WITHIN_S = 0.05
# Records held for another partition's event are tried again this often when nothing new
# comes (a delivery tries them anyway), and a batch written behind is seen through.
RETRY_HELD_S = 0.5
# The group's committed offsets follow the read model's positions this often: only a hint
# for ops tools (the worker itself always resumes from the read model).
COMMIT_INTERVAL_S = 5.0
# A partition whose look at the log failed (a broker frozen or slow to answer) is read and
# looked at again after this long.
RECHECK_S = 1.0


class Reader(Protocol):
    partitions: set[int]

    def assign(self, partitions: set[int], positions: dict[int, int]) -> None: ...
    def seek(self, offsets: dict[int, int]) -> None: ...
    def take(self, limit: int, within_s: float) -> list[LogRecord]: ...


class Feed:
    """One worker's loop: `step` is called over and over from a thread of its own."""

    def __init__(
        self,
        driver: ContiguousDriver,
        reader: Reader,
        owned: Callable[[], set[int]],
        on_owned: Callable[[set[int]], None] = lambda _: None,
        commit: Callable[[dict[int, int]], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self.reader = reader
        # The partitions the group gives this worker now (none while it rebalances).
        self.owned = owned
        self.on_owned = on_owned  # told each new assignment (Faust pauses its own fetching)
        self.commit = commit
        self.clock = clock
        self.mine: set[int] = set()  # what `owned` said when last followed
        self._committed: dict[int, int] = {}
        self.pauses = Pauses(clock)
        self._committed_at = clock()
        # Why the worker stops ("" while it runs), and set once the feed has stopped.
        self.stopping = ""
        self.running = False  # set when its thread starts
        self.stopped = threading.Event()

    def stop(self, why: str) -> None:
        """Ask the feed's thread to stop after the step in hand (`close` follows); a batch
        waiting for an unreachable read model gives up (its positions did not move)."""
        self.stopping = why
        self.driver.applier.stopping.set()

    def close(self) -> None:
        """Commit what is in flight and say what this worker gives up; from the feed's thread,
        while the worker is still in the group, so nothing is applied after it has left."""
        try:
            self.driver.writer.flush()
        finally:
            self.say_stopped()

    def say_stopped(self) -> None:
        """Say which partitions this worker gives up, at which offsets, and that it stopped."""
        at = self.driver.applier.positions
        log.info(
            "aggregate worker stops (%s): gave up partitions %s at offsets %s",
            self.stopping or "stopping",
            sorted(self.mine),
            {p: at.get(p, 0) for p in sorted(self.mine)},
        )
        self.stopped.set()

    def step(self) -> None:
        """Follow the assignment, then apply what comes within a short wait."""
        mine = self.owned()
        if mine != self.mine:
            self._follow(mine)
        d = self.driver
        # A partition holding all it may while it waits is not read meanwhile (not paused:
        # kafka-python 3.0.12 never fetched a partition again that was resumed while data of
        # it was parked, its KAFKA-7548 port); taken back, it goes on past what it holds.
        reading = self.mine - d.full()
        if reading != self.reader.partitions:
            self.reader.assign(reading, {p: d.next_offset(p) for p in reading})
        try:
            records = self.reader.take(BATCH, TAKE_WITHIN_S)
        except (OffsetOutOfRangeError, LogTruncationError):
            self.check_log()  # raises LogLost when the log ends before the read model
            raise
        if records:
            records = self._checked(records)
        if records or (d.holding() and self.clock() - d.last_handled >= RETRY_HELD_S):
            self.reader.seek(d.handle(records))
        self._commit_positions()

    def check_log(self) -> None:
        """Raise LogLost when the read model's positions lie past the log's end (the broker
        lost its data, the topic was made again): the records it takes from now on would be
        taken for those applied at their offsets, and never counted. Every partition the read
        model has a position for is compared, not only ours: a topic deleted under the group
        leaves its workers none until the group rebalances, and they would not look."""
        at = read_positions(self.driver.applier.engine)
        held = self.driver.applier.positions  # ours, maybe past what is committed
        for p in self.mine:
            at[p] = max(at.get(p, 0), held.get(p, 0))
        if at:
            refuse_lost(at, ends_covering(self.driver.kafka, at))

    def _checked(self, records: list[LogRecord]) -> list[LogRecord]:
        """Return the records that may be applied: all, once each partition delivering again
        after a pause is found to come from the log the read model was built from (else
        LogLost, `Pauses`). When the log cannot be looked at now (a broker frozen or slow:
        "Failed to get offsets by timestamps in 30000 ms"), those partitions' records are put
        back, to be read and looked at again, as a worker rides out a broker's restart; before
        2026-12-06 the timeout stopped the worker ("a batch failed")."""
        resumed = self.pauses.resumed({r.partition for r in records})
        if not resumed:
            return records
        try:
            refuse_replaced_at(
                self.driver.kafka, self.driver.applier.marks_when_reachable(), resumed
            )
        except (KafkaError, TimeoutError) as e:
            log.warning(
                "partitions %s deliver again, but the log cannot be looked at now (%s); "
                "their records are read again and looked at in %g s",
                sorted(resumed),
                str(e).splitlines()[0] if str(e) else type(e).__name__,
                RECHECK_S,
            )
            self.pauses.forget(resumed)  # their next delivery is looked at again
            self.reader.seek({p: self.driver.next_offset(p) for p in resumed})
            time.sleep(RECHECK_S)
            return [r for r in records if r.partition not in resumed]
        return records

    def _follow(self, mine: set[int]) -> None:
        d = self.driver
        gone = self.mine - mine
        gained = mine - self.mine
        d.release(gone)
        self.pauses.forget(gone)
        for p in gone:
            self._committed.pop(p, None)  # its next owner commits it
        if gained:
            # Another worker may have moved them since this one last had them: start from
            # the read model (what is written behind is committed first, so nothing of ours
            # is forgotten).
            d.writer.flush()
            d.applier.refresh_when_reachable()
        self.mine = set(mine)
        log.info(
            "reading partitions %s (gained %s, gave up %s)",
            sorted(mine),
            sorted(gained),
            sorted(gone),
        )
        self.on_owned(mine)

    def _commit_positions(self) -> None:
        if self.clock() - self._committed_at < COMMIT_INTERVAL_S:
            return
        self._committed_at = self.clock()
        at = self.driver.applier.positions
        positions = {p: at.get(p, 0) for p in self.mine}
        changed = {p: o for p, o in positions.items() if self._committed.get(p) != o}
        if changed:
            self.commit(changed)
            self._committed.update(changed)
