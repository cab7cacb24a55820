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

log = logging.getLogger(__name__)


class ContiguousDriver:
    """Apply what a consumer delivers; say where to seek when it skipped ahead or held back."""

    def __init__(self, kafka: KafkaLog, engine: Engine) -> None:
        self.kafka = kafka
        self.applier = BatchApplier(engine, on_dead=self._dead_letter)
        self.busy = False
        self.last_handled = time.monotonic()
        self.last: Applied | None = None

    def handle(self, records: Sequence[LogRecord]) -> dict[int, int]:
        """Apply the records; return {partition: offset} the consumer must seek back to."""
        self.busy = True
        try:
            return self._handle(records)
        finally:
            self.busy = False
            self.last_handled = time.monotonic()

    def stalled(self, assigned: set[int], for_s: float) -> bool:
        """Return whether work waits on our partitions while nothing was handled for `for_s`."""
        if self.busy or time.monotonic() - self.last_handled < for_s or not assigned:
            return False
        ends = self.kafka.end_offsets()
        return any(ends.get(p, 0) > self.applier.positions.get(p, 0) for p in assigned)

    def _handle(self, records: Sequence[LogRecord]) -> dict[int, int]:
        by_partition: dict[int, list[LogRecord]] = defaultdict(list)
        for rec in records:
            by_partition[rec.partition].append(rec)
        seeks: dict[int, int] = {}
        admitted: list[LogRecord] = []
        for p, recs in by_partition.items():
            expected = self.applier.positions.get(p, 0)
            fresh = [r for r in recs if r.offset >= expected]
            if fresh and fresh[0].offset > expected and not self._real_gap(p, expected):
                # The consumer resumed past what the read model holds (its committed offset
                # ran ahead of ours): read again from our position.
                seeks[p] = expected
                continue
            admitted += fresh
        self.last = self.applier.apply(admitted) if admitted else None
        if self.last is not None:
            metrics.observe_applied(self.last.records, self.last.recorded_at)
            for p in self.last.blocked:
                seeks[p] = self.applier.positions.get(p, 0)
        return seeks

    def _real_gap(self, partition: int, expected: int) -> bool:
        """Return whether the log itself holds no record at `expected` (e.g. a control record)."""
        found = self.kafka.read(partition, expected, 1)
        return not found or found[0].offset > expected

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
