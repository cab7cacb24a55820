"""Replay: rebuild the read model from the log into a fresh store, with progress; resumable
(the store keeps its positions), optionally cut at a record time ("what was known then")."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine

from duhub.convert import to_nanos
from duhub.log.base import EventLog, LogRecord
from duhub.v1 import events_pb2 as pb
from services.aggregate.apply import BatchApplier, log_settled
from services.aggregate.process_writer import MIN_RECORDS as PROCESS_WRITER_MIN_RECORDS
from services.aggregate.process_writer import ProcessWriter
from services.aggregate.write_behind import WriteBehind

BATCH = 20000


@dataclass(slots=True)
class ReplayProgress:
    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        return (self.total - self.done) / self.rate if self.rate > 0 else float("inf")


def recorded_at(rec: LogRecord) -> int:
    """Return when the hub recorded a log record (the log's time for Kafka-direct ones)."""
    if not rec.ingested:
        return rec.timestamp_ns
    try:
        msg = pb.Event.FromString(rec.value)
    except Exception:  # a malformed record: the applier dead-letters it
        return rec.timestamp_ns
    return to_nanos(msg.recorded_at) if msg.HasField("recorded_at") else rec.timestamp_ns


def replay(
    log: EventLog,
    target: Engine,
    *,
    until_ns: int | None = None,
    since_ns: int | None = None,
    start: dict[int, int] | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    upto: Mapping[int, int] | None = None,
) -> ReplayProgress:
    """Apply the log into `target` from its own positions to the end as of now, or to the
    offsets `upto` (per partition; one it does not name is not read).

    With `until_ns`, only records recorded at or before it are applied. Records before
    `start` (offsets per partition) or recorded before `since_ns` build the state the later
    ones need (units, campaigns, problems) but count in no figure.
    """
    applier = BatchApplier(target, settled=log_settled(log))
    ends = log.end_offsets()
    if upto is not None:
        ends = {p: min(end, upto.get(p, 0)) for p, end in ends.items()}
    total = backlog(ends, applier.positions)
    writer = WriteBehind(applier, process=_process_writer(target, total))
    try:
        return _replay(log, applier, writer, ends, total, until_ns, since_ns, start, on_progress)
    finally:
        writer.close()


def backlog(ends: Mapping[int, int], positions: Mapping[int, int]) -> int:
    """Return how many records lie between the positions and the log's ends."""
    return sum(max(0, end - positions.get(p, 0)) for p, end in ends.items())


def _process_writer(target: Engine, backlog: int) -> ProcessWriter | None:
    """A child process to write SQLite's batches, when the backlog is long enough to repay
    starting it (PostgreSQL is written behind by a thread: it works in its own process)."""
    if target.dialect.name != "sqlite" or target.url.database in (None, "", ":memory:"):
        return None
    if backlog < PROCESS_WRITER_MIN_RECORDS:
        return None
    return ProcessWriter(target.url.render_as_string(hide_password=False))


def _replay(
    log: EventLog,
    applier: BatchApplier,
    writer: WriteBehind,
    ends: dict[int, int],
    total: int,
    until_ns: int | None,
    since_ns: int | None,
    start: dict[int, int] | None,
    on_progress: Callable[[ReplayProgress], None] | None,
) -> ReplayProgress:
    start = start or {}
    t0 = time.monotonic()
    done = 0
    progress = ReplayProgress(0, total, 0.0)
    while True:
        moved = 0
        for p, end in list(ends.items()):
            pos = applier.positions.get(p, 0)
            if pos >= end:
                continue
            records = log.read(p, pos, min(BATCH, end - pos))
            if until_ns is not None:
                past = next((i for i, r in enumerate(records) if recorded_at(r) > until_ns), None)
                if past is not None:
                    # The partition ends at the cut: ingest stamps records in append order.
                    ends[p] = records[past].offset
                    records = records[:past]
            if not records:
                continue
            cut = next(
                (
                    i
                    for i, r in enumerate(records)
                    if r.offset >= start.get(p, 0)
                    and (since_ns is None or recorded_at(r) >= since_ns)
                ),
                len(records),
            )
            if cut:
                writer.apply(records[:cut], figures=False)
            # Only once all before the cut is applied: a record there may wait for another
            # partition's event, and the applier takes the records it is given as following on
            # from the position (before, those after the cut moved it past the waiting one,
            # which was never applied: a village lost, the problems found in it rejected).
            done_before = cut == 0 or applier.positions.get(p, 0) > records[cut - 1].offset
            if cut < len(records) and done_before:
                writer.apply(records[cut:])
            step = applier.positions.get(p, 0) - pos
            moved += step
            done += step
        progress = ReplayProgress(done, total, time.monotonic() - t0)
        if on_progress is not None:
            on_progress(progress)
        if all(applier.positions.get(p, 0) >= end for p, end in ends.items()):
            writer.flush()  # every batch committed before it is called done
            # The rate counts the last batch's write too.
            return ReplayProgress(done, total, time.monotonic() - t0)
        if moved == 0:
            time.sleep(0.05)  # a partition waits on another one
