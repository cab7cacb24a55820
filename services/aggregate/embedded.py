"""The embedded aggregator: tail the embedded log and apply it to the read model."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from duhub.feed import ChangeFeed
from duhub.log.base import EventLog
from duhub.readmodel.writer import read_positions
from services.aggregate.apply import BatchApplier

log = logging.getLogger(__name__)


class LogTailer:
    """Apply every partition of a log from the read model's positions on, batch by batch."""

    def __init__(self, log_: EventLog, engine: Engine, feed: ChangeFeed | None = None,
                 batch: int = 2000) -> None:
        self.log = log_
        self.engine = engine
        self.feed = feed
        self.batch = batch
        self.applier = BatchApplier(engine)
        self.positions = {p: 0 for p in log_.partitions()}
        self.positions.update(read_positions(engine))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def step(self) -> int:
        """Apply at most one batch per partition; return how many records were applied."""
        n = 0
        for p in self.log.partitions():
            records = self.log.read(p, self.positions.get(p, 0), self.batch)
            if not records:
                continue
            applied = self.applier.apply(records)
            self.positions[p] = records[-1].offset + 1
            n += len(records)
            if self.feed is not None:
                self.feed.publish(applied.summary.campaigns, applied.summary.counted > 0)
        return n

    def catch_up(self) -> int:
        """Apply until the read model holds everything the log held when called."""
        target = self.log.end_offsets()
        total = 0
        while any(self.positions.get(p, 0) < end for p, end in target.items()):
            total += self.step()
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aggregate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.step() == 0:
                    self.log.wait(self.positions, 0.5)
        except BaseException as e:  # stop loudly: advancing past a failed batch would lose it
            self.error = e
            log.exception("aggregator stopped")
            raise

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
