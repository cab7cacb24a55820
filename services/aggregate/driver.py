"""Feed records read from Kafka to the BatchApplier, keeping each partition contiguous with
the read model's position, whatever was delivered."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Engine

from duhub import metrics
from duhub.log.base import LogRecord, holds_all
from duhub.log.kafka import KafkaLog
from services.aggregate.apply import Applied, BatchApplier, dead_letter_sink, log_settled
from services.aggregate.write_behind import WriteBehind

log = logging.getLogger(__name__)

# Records held per partition while it waits for another partition's event. A partition
# holding this many is not read further until they are applied (`Feed` takes it out of the
# reader's assignment): memory stays bounded however long it waits (12 partitions holding
# 50,000 each took the worker past 500 MB, 10,000 each to 504 MB by 6.6M records).
HOLD_LIMIT = 2_000
# Records of a waiting partition tried per round: the rest would be decoded for nothing.
PROBE = 50


class ContiguousDriver:
    """Apply what a reader delivers; say where to seek when it skipped ahead or held back."""

    def __init__(self, kafka: KafkaLog, engine: Engine) -> None:
        self.kafka = kafka
        self.applier = BatchApplier(
            engine, on_dead=dead_letter_sink(kafka), settled=log_settled(kafka)
        )
        # The next batch is folded while the last one is written (PostgreSQL).
        self.writer = WriteBehind(self.applier, on_committed=self._committed)
        self.busy = False
        self.last_handled = time.monotonic()
        self._waiting_since: float | None = None  # when the watchdog first saw work waiting
        self.last: Applied | None = None
        self.held: dict[int, list[LogRecord]] = {}
        # Whether the last round let a probed partition through (see `handle`).
        self._probes_passed = False

    def handle(self, records: Sequence[LogRecord]) -> dict[int, int]:
        """Apply the records; return {partition: offset} the reader must seek back to, where
        it skipped ahead of the read model."""
        self.busy = True
        try:
            seeks = self._handle(records)
            # A partition probed with the head of its held records that got through has the
            # rest of them here: apply them now, not at the next delivery or retry tick.
            while self._probes_passed:
                seeks.update(self._handle([]))
            return seeks
        finally:
            self.busy = False
            self.last_handled = time.monotonic()

    def stalled(self, assigned: set[int], for_s: float) -> bool:
        """Return whether work has waited on our partitions for `for_s` with nothing handled
        meanwhile. Timed from when it was first seen waiting, not from the last batch: a
        worker idle that long whose first records have just come is not wedged (it was
        stopped, exit 70, before it could take them)."""
        if self.busy or not assigned or not self._waiting(assigned):
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None or self.last_handled > self._waiting_since:
            self._waiting_since = now
        return now - self._waiting_since >= for_s

    def _waiting(self, assigned: set[int]) -> bool:
        ends = self.kafka.end_offsets()
        at = self.applier.positions.get
        return not all(holds_all(self.kafka, p, at(p, 0), ends.get(p, 0)) for p in assigned)

    def holding(self) -> bool:
        """Return whether records wait here for an event of another partition, or a batch
        is still being written (both want a `handle([])` when nothing else comes)."""
        return any(self.held.values()) or self.writer.pending

    def full(self) -> set[int]:
        """Return the partitions that hold as much as they may: not to be read for now."""
        return {p for p, held in self.held.items() if len(held) >= HOLD_LIMIT}

    def next_offset(self, partition: int) -> int:
        """Return where reading `partition` goes on: past what is held, or the position."""
        held = self.held.get(partition)
        return held[-1].offset + 1 if held else self.applier.positions.get(partition, 0)

    def release(self, partitions: set[int]) -> None:
        """Forget what is held for these partitions (no longer ours)."""
        for p in partitions:
            self.held.pop(p, None)

    def _handle(self, records: Sequence[LogRecord]) -> dict[int, int]:
        # Records a partition could not apply yet go first, then what the reader delivered
        # (a record it delivers again after a seek is taken once).
        by_partition: dict[int, dict[int, LogRecord]] = defaultdict(dict)
        for rec in [r for held in self.held.values() for r in held] + list(records):
            by_partition[rec.partition].setdefault(rec.offset, rec)
        was_blocked = self.last.blocked if self.last is not None else set()
        self.held = {}
        seeks: dict[int, int] = {}
        admitted: list[LogRecord] = []
        probed: set[int] = set()
        for p, recs in by_partition.items():
            expected = self.applier.positions.get(p, 0)
            fresh, missing = self._contiguous(p, expected, [recs[o] for o in sorted(recs)])
            if missing is not None:
                # The reader went on past what the read model holds, or past what is held
                # here: fetch again from the hole.
                seeks[p] = missing
            if not fresh:
                continue
            if p in was_blocked and len(fresh) > PROBE:
                # Still waiting, most likely: try the head, keep the rest unread.
                fresh, self.held[p] = fresh[:PROBE], fresh[PROBE:]
                probed.add(p)
            admitted += fresh
        t0 = time.monotonic()
        if admitted:
            self.last = self.writer.apply(admitted)
        else:
            self.last = None
            self.writer.flush()
        # A poll that delivered nothing (an idle worker, ~10 a second) is no news, unless it
        # applied records that waited: else the log said they wait, and never that they went in.
        applied_held = not records and self.last is not None and self.last.records > 0
        log.log(
            logging.INFO if records or applied_held else logging.DEBUG,
            "folded %d of %d records (%d delivered) in %.3f s; waiting: %s",
            self.last.records if self.last else 0,
            len(admitted),
            len(records),
            time.monotonic() - t0,
            sorted(self.last.blocked) if self.last else [],
        )
        self._probes_passed = self.last is not None and bool(probed - self.last.blocked)
        if self.last is not None:
            for p in self.last.blocked:
                # Held here (in offset order, from the position on) rather than read again.
                # Past the limit the rest is let go: the partition is not read while it holds
                # all it may, then goes on past what it holds (`full`, `next_offset`).
                at = self.applier.positions.get(p, 0)
                waiting = [r for r in admitted if r.partition == p and r.offset >= at]
                waiting += self.held.get(p, [])
                self.held[p] = waiting[:HOLD_LIMIT]
        return seeks

    def _committed(self, applied: Applied) -> None:
        metrics.observe_applied(applied.records, applied.recorded_at)

    def _contiguous(
        self, partition: int, expected: int, records: list[LogRecord]
    ) -> tuple[list[LogRecord], int | None]:
        """Return the run of `records` (in offset order) that goes on from `expected` without
        a hole the log itself does not have, and the offset the reader must fetch from
        again when records past a hole were left out (None: none were).

        Only this run may be applied: records past a hole would move the position over
        records never seen, and those would never be counted."""
        at = expected
        for i, rec in enumerate(records):
            if rec.offset < at:
                continue  # applied before
            if rec.offset > at and not self._log_skips(partition, at, rec.offset):
                return [r for r in records[:i] if r.offset >= expected], at
            at = rec.offset + 1
        return [r for r in records if r.offset >= expected], None

    def _log_skips(self, partition: int, start: int, stop: int) -> bool:
        """Return whether the log itself holds no record from `start` up to `stop` (e.g. a
        transaction's control record), so that the record at `stop` follows on from `start`."""
        found = self.kafka.read(partition, start, 1)
        return bool(found) and found[0].offset >= stop
