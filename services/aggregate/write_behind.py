"""Fold the next batch while the last one is written: the read model's time (PostgreSQL works
in its own process, and the driver waits with the GIL released) overlaps Python's.

At most one batch is in flight. The next one is folded on top of its state (an overlay that
answers before the read model, which may or may not hold it yet), and is handed to the writer
only once the one before has committed, so each commit still checks the positions its batch
started from. If a write fails (another worker moved the positions, or the read model went
away), nothing folded on top of it is kept: both batches are applied again the ordinary way,
from the positions the read model holds, with its retries.
"""

from __future__ import annotations

import logging
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
        self._inflight: tuple[Future[Applied], Prepared] | None = None
        self.overlapping = (
            process is not None or applier.engine.dialect.name in OVERLAPPING_DIALECTS
        )

    @property
    def pending(self) -> bool:
        """Whether a batch is still being written."""
        return self._inflight is not None

    def apply(self, records: Sequence[LogRecord], *, figures: bool = True) -> Applied:
        """Fold `records` and hand them to the writer; return what the fold found (which
        partitions wait, dead letters). The applier's positions move on at once."""
        a = self.applier
        if not self.overlapping or (self.process is not None and not self.process.usable):
            # In turn (from here on, when the writer process is gone).
            self._settle()
            return self._tell(a.apply(records, figures=figures))
        overlay = self._inflight[1].ws if self._inflight is not None else None
        try:
            # A child process builds the rollup rows itself: fewer rows to hand over, and
            # that work off this process's core.
            prepared = a.prepare(records, figures, overlay=overlay, rollups=self.process is None)
        except Exception as e:  # noqa: BLE001 - e.g. the read model went away meanwhile
            log.info("folding a batch failed (%s); applying it the ordinary way", e)
            self._settle()
            return self._tell(a.apply(records, figures=figures))
        if self._inflight is not None and prepared.writes_nothing():
            # Every record waits (for another partition's event): nothing to hand over, so
            # the batch in flight is not waited for; the next one folds on top of it still.
            return prepared.out
        if not self._settle():
            # The batch under this one did not commit: fold everything again from the read
            # model, synchronously (BatchApplier.apply retries conflicts and outages).
            return self._tell(a.apply(records, figures=figures))
        prepared.ws.base = a.knowledge  # what it was folded on is in the read model now
        a.positions = prepared.moved
        self._inflight = (self._writer.submit(self._write, prepared), prepared)
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
        self.flush()
        self._writer.shutdown(wait=True)
        if self.process is not None:
            self.process.close()

    def _settle(self) -> bool:
        """Wait for the batch in flight; return False if it had to be applied again."""
        if self._inflight is None:
            return True
        future, prepared = self._inflight
        self._inflight = None
        try:
            future.result()
        except Exception as e:  # noqa: BLE001 - any failure: the ordinary path decides
            log.info("a batch written behind failed (%s); applying it again", e)
            # From where that batch started; the ordinary path asks the read model again when
            # its positions moved (the commit may have happened after all) or it is away.
            a = self.applier
            a.positions = dict(prepared.start)
            self._tell(a.apply(prepared.records, figures=prepared.figures))
            return False
        return True
