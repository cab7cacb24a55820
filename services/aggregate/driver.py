"""Feed records that a Kafka consumer delivered to the BatchApplier, keeping each partition
contiguous with the read model's position, whatever the consumer's own offsets say."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Engine

from duhub import metrics
from duhub.log.base import LogRecord
from duhub.log.kafka import KafkaLog
from duhub.readmodel.writer import DeadLetter
from services.aggregate.apply import Applied, BatchApplier
from services.aggregate.write_behind import WriteBehind

log = logging.getLogger(__name__)

# Records held per partition while it waits for another partition's event.
HOLD_LIMIT = 50_000
# Records of a waiting partition tried per round: the rest would be decoded for nothing.
PROBE = 50
# While partitions wait, records read straight from the log per partition that nobody waits
# on and that lags behind the log's end: in a backlog, the partition the others wait for (the
# city's campaigns) would otherwise come only at the consumer's pace, a poll's share at a time.
READ_AHEAD = 2_000
# Rounds of reading ahead in one call: then the consumer gets its turn again (a rebalance, new
# deliveries), and the retry tick or the next delivery goes on from there.
READ_AHEAD_ROUNDS = 8


class ContiguousDriver:
    """Apply what a consumer delivers; say where to seek when it skipped ahead or held back."""

    def __init__(self, kafka: KafkaLog, engine: Engine) -> None:
        self.kafka = kafka
        self.applier = BatchApplier(engine, on_dead=self._dead_letter)
        # The next batch is folded while the last one is written (PostgreSQL).
        self.writer = WriteBehind(self.applier, on_committed=self._committed)
        self.busy = False
        self.last_handled = time.monotonic()
        self.last: Applied | None = None
        self.held: dict[int, list[LogRecord]] = {}
        # The partitions this worker owns (set by the app before each call; none: unknown,
        # and nothing is read ahead).
        self.assigned: set[int] = set()
        self.read_ahead = 0  # records read straight from the log (metrics, tests)
        # Whether the last round let a probed partition through (see `handle`).
        self._probes_passed = False

    def handle(self, records: Sequence[LogRecord]) -> dict[int, int]:
        """Apply the records; return {partition: offset} the consumer must seek to: back when
        it skipped ahead of the read model, forward past what was read straight from the log."""
        self.busy = True
        try:
            seeks = self._handle(records)
            rounds = 0
            read: set[int] = set()
            while True:
                # A partition probed with the head of its held records that got through has
                # the rest of them here: apply them now, not at the next delivery or retry tick.
                if self._probes_passed:
                    seeks.update(self._handle([]))
                    continue
                ahead = self._read_ahead(seeks) if rounds < READ_AHEAD_ROUNDS else []
                if not ahead:
                    break
                rounds += 1
                read.update(r.partition for r in ahead)
                seeks.update(self._handle(ahead))
            # What was read ahead need not come again: the consumer goes on from there (it
            # drops what it fetched below the offset sought; its own offsets are only a hint).
            for p in read - set(seeks):
                held = self.held.get(p)
                at = self.applier.positions.get(p, 0)
                seeks[p] = max(r.offset for r in held) + 1 if held else at
            return seeks
        finally:
            self.busy = False
            self.last_handled = time.monotonic()

    def stalled(self, assigned: set[int], for_s: float) -> bool:
        """Return whether work waits on our partitions while nothing was handled for `for_s`."""
        if not self._idle_for(for_s) or not assigned:
            return False
        ends = self.kafka.end_offsets()
        return any(ends.get(p, 0) > self.applier.positions.get(p, 0) for p in assigned)

    def resume_points(self, assigned: set[int], idle_s: float) -> dict[int, int]:
        """Return {partition: the read model's position} for our partitions that lag behind
        the log's end and hold nothing here, once nothing was handled for `idle_s`: where the
        consumer must go on from (it resumed from offsets committed past the read model, as
        a group that ran before leaves them for a read model started afresh)."""
        if not self._idle_for(idle_s) or not assigned:
            return {}
        ends = self.kafka.end_offsets()
        points = {p: self.applier.positions.get(p, 0) for p in assigned if not self.held.get(p)}
        return {p: at for p, at in points.items() if ends.get(p, 0) > at}

    def _idle_for(self, seconds: float) -> bool:
        return not self.busy and time.monotonic() - self.last_handled >= seconds

    def holding(self) -> bool:
        """Return whether records wait here for an event of another partition, or a batch
        is still being written (both want a `handle([])` when nothing else comes)."""
        return any(self.held.values()) or self.writer.pending

    def release(self, partitions: set[int]) -> None:
        """Forget what is held for these partitions (no longer ours)."""
        for p in partitions:
            self.held.pop(p, None)

    def _handle(self, records: Sequence[LogRecord]) -> dict[int, int]:
        # Records a partition could not apply yet go first, then what the consumer delivered
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
                # The consumer resumed past what the read model holds, or past what is held
                # here (its committed offsets ran ahead of ours): fetch again from the hole.
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
        log.info(
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
                # Held here rather than fetched again: a seek drops what the consumer has in
                # flight and costs a round of fetches (and aiokafka's fetcher has crashed after
                # seeks, robinhood/aiokafka#19). Past the limit, memory wins: seek.
                at = self.applier.positions.get(p, 0)
                waiting = [r for r in admitted if r.partition == p and r.offset >= at]
                waiting += self.held.get(p, [])
                if len(waiting) > HOLD_LIMIT:
                    seeks[p] = at
                    self.held.pop(p, None)
                else:
                    self.held[p] = waiting
        return seeks

    def _read_ahead(self, seeks: dict[int, int]) -> list[LogRecord]:
        """Return records read straight from the log for our partitions that nobody waits
        on, hold nothing, and lag behind the log's end, when others wait: what the waiting
        ones need is most likely among them. The consumer delivers those records again later;
        being below the position by then, they are dropped unread."""
        if self.last is None or not self.last.blocked or not self.assigned:
            return []
        free = self.assigned - self.last.blocked - set(seeks)
        free -= {p for p, held in self.held.items() if held}
        if not free:
            return []
        ends = self.kafka.end_offsets()
        out: list[LogRecord] = []
        for p in sorted(free):
            at = self.applier.positions.get(p, 0)
            if ends.get(p, 0) > at:
                out += self.kafka.read(p, at, READ_AHEAD)
        self.read_ahead += len(out)
        if out:
            log.info(
                "read %d records ahead of the consumer, from partitions %s", len(out), sorted(free)
            )
        return out

    def _committed(self, applied: Applied) -> None:
        metrics.observe_applied(applied.records, applied.recorded_at)

    def _contiguous(
        self, partition: int, expected: int, records: list[LogRecord]
    ) -> tuple[list[LogRecord], int | None]:
        """Return the run of `records` (in offset order) that goes on from `expected` without
        a hole the log itself does not have, and the offset the consumer must fetch from
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

    def _dead_letter(self, rec: LogRecord, letter: DeadLetter) -> None:
        # Sent before the read model commits: a crash in between may send it twice, never lose it.
        producer = self.kafka.producer()
        producer.send(
            self.kafka.spec.dlq_topic,
            key=rec.key,
            value=rec.value,
            headers=[
                ("duhub-reason", letter.reason.encode()),
                ("duhub-partition", str(rec.partition).encode()),
                ("duhub-offset", str(rec.offset).encode()),
            ],
        ).get(timeout=30)
