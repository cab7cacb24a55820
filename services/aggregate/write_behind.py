"""Fold the next batch while the last one is written: the read model's time (PostgreSQL works
in its own process, and the driver waits with the GIL released) overlaps Python's.

Up to MAX_IN_FLIGHT batches are in flight, written one after the other by one thread. The next
one is folded on top of the last one's state (an overlay that answers before the read model,
which may or may not hold those batches yet); each commit checks the positions its batch
started from, which the batch before it moved. If a write fails (another worker moved the
positions, or the read model went away), nothing folded on top of it is kept: it and every
batch after it are applied again the ordinary way, from the positions the read model holds,
with its retries.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from duhub.log.base import LogRecord
from services.aggregate.apply import Applied, BatchApplier, Prepared

if TYPE_CHECKING:
    from services.aggregate.process_writer import ProcessWriter

log = logging.getLogger(__name__)

# Only where the database works outside this process. SQLite writes here, under the GIL it
# takes back for every row: overlapped by a thread, by measure, it came out slower than in
# turn; a long replay hands SQLite's writes to a child process instead (`ProcessWriter`).
OVERLAPPING_DIALECTS = ("postgresql",)
# Two, not one: in a backlog the driver follows a big batch with a small one (the records it
# held for another partition's event), and with one in flight that small batch waited for the
# big one's write before the next delivery could be folded: by measure, half the worker's time
# (100k records into PostgreSQL: the small batches' calls took 12.6 of 24.4 s).
MAX_IN_FLIGHT = 2


class WriteBehind:
    def __init__(
        self,
        applier: BatchApplier,
        on_committed: Callable[[Applied], None] | None = None,
        process: ProcessWriter | None = None,
    ) -> None:
        """`on_committed` is told of each batch once it is in the read model (from the
        writer's thread when it was written behind). With `process`, batches are written by
        that child process (and it is closed with this)."""
        self.applier = applier
        self.on_committed = on_committed
        self.process = process
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="duhub-write-behind")
        # Oldest first: (its write, the batch).
        self._inflight: deque[tuple[Future[Applied], Prepared]] = deque()
        self.overlapping = (
            process is not None or applier.engine.dialect.name in OVERLAPPING_DIALECTS
        )

    @property
    def pending(self) -> bool:
        """Whether a batch is still being written."""
        return bool(self._inflight)

    def apply(self, records: Sequence[LogRecord], *, figures: bool = True) -> Applied:
        """Fold `records` and hand them to the writer; return what the fold found (which
        partitions wait, dead letters). The applier's positions move on at once."""
        a = self.applier
        if not self.overlapping or (self.process is not None and not self.process.usable):
            # In turn (from here on, when the writer process is gone).
            self._settle()
            return self._tell(a.apply(records, figures=figures))
        overlay = self._inflight[-1][1].ws if self._inflight else None
        try:
            # A child process builds the rollup rows itself: fewer rows to hand over, and
            # that work off this process's core.
            prepared = a.prepare(records, figures, overlay=overlay, rollups=self.process is None)
        except Exception as e:  # noqa: BLE001 - e.g. the read model went away meanwhile
            log.info("folding a batch failed (%s); applying it the ordinary way", e)
            self._settle()
            return self._tell(a.apply(records, figures=figures))
        if self._inflight and prepared.writes_nothing():
            # Every record waits (for another partition's event): nothing to hand over, so
            # the batches in flight are not waited for; the next one folds on top of them.
            return prepared.out
        if not self._settle(keep=MAX_IN_FLIGHT - 1):
            # A batch under this one did not commit: fold everything again from the read
            # model, synchronously (BatchApplier.apply retries conflicts and outages).
            return self._tell(a.apply(records, figures=figures))
        if not self._inflight:
            prepared.ws.base = a.knowledge  # what it was folded on is in the read model now
        a.positions = prepared.moved
        self._inflight.append((self._writer.submit(self._write, prepared), prepared))
        return prepared.out

    def _write(self, prepared: Prepared) -> Applied:
        via = self.process.write_rows if self.process is not None else None
        # Told at once, from the writer's thread.
        return self._tell(self.applier.write(prepared, via))

    def _tell(self, done: Applied) -> Applied:
        if self.on_committed is not None:
            self.on_committed(done)
        return done

    def flush(self) -> None:
        """Wait until what was handed over is committed (or applied again after a failure)."""
        self._settle()

    def close(self) -> None:
        try:
            self.flush()
        finally:  # a write that failed for good (a full disk) still ends the writers
            self._writer.shutdown(wait=True)
            if self.process is not None:
                self.process.close()

    def _settle(self, keep: int = 0) -> bool:
        """Wait for the oldest batches in flight until `keep` are left; return False if one
        failed (then it and every batch after it were applied again, and none is left)."""
        while len(self._inflight) > keep:
            future, prepared = self._inflight.popleft()
            try:
                future.result()
            except Exception as e:  # noqa: BLE001 - any failure: the ordinary path decides
                log.info("a batch written behind failed (%s); applying it again", e)
                self._apply_again(prepared)
                return False
            if self._inflight:
                # The next one was folded on this one, which is in the read model now.
                self._inflight[0][1].ws.base = self.applier.knowledge
        return True

    def _apply_again(self, failed: Prepared) -> None:
        """Apply the failed batch and every batch still in flight after it (all folded on
        it, whether or not their own writes landed) the ordinary way, oldest first."""
        after = list(self._inflight)
        self._inflight.clear()
        for future, _ in after:
            # Let them finish first (a later one fails its positions check, or landed because
            # the failed one's commit did after all: then it is skipped below).
            future.exception()
        a = self.applier
        # From where the failed one started; the ordinary path asks the read model again when
        # its positions moved (the commit may have happened after all) or it is away.
        a.positions = dict(failed.start)
        for prepared in [failed, *(p for _, p in after)]:
            self._tell(a.apply(prepared.records, figures=prepared.figures))
