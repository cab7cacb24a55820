"""The log tailer: read every partition of a log from the read model's positions on and apply
it. Drives the embedded hub, `duhub up --log kafka://…`, and replay."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kafka.errors import KafkaError
from sqlalchemy import Engine

from duhub import metrics
from duhub.feed import ChangeFeed
from duhub.log.base import EventLog, holds_all
from duhub.log.belongs import refuse_lost, refuse_replaced_at
from services.aggregate.apply import BatchApplier, dead_letter_sink, log_settled
from services.aggregate.pauses import Pauses
from services.aggregate.process_writer import MIN_RECORDS as PROCESS_WRITER_MIN_RECORDS

if TYPE_CHECKING:
    from services.aggregate.replay import ReplayProgress

log = logging.getLogger(__name__)

# A backlog this long is caught up the way replay applies a log (see `catch_up`).
LONG_BACKLOG = PROCESS_WRITER_MIN_RECORDS
# How long a partition waiting on another one rests before it is read again.
BLOCKED_PAUSE_S = 0.05
# Fault fix: a log that cannot be read for now (a Kafka broker restarting) is read again after
# a pause, for up to this long, instead of stopping the aggregator on the first error.
LOG_OUTAGE_LIMIT_S = 600.0
# How long a stop waits for the tailer's thread: a batch in hand commits within it. Past it the
# thread is left to the process's exit, as `KafkaLog.close` leaves a reader: it is waiting on a
# broker that does not answer (a frozen one keeps a read up to kafka-python's 30 s request
# timeout), and each batch commits with its positions or not at all, so what it has not
# committed is applied at the next start from the log. Before 2026-12-07 the stop waited 10 s
# here, and `duhub up` on a frozen broker took 15-17 s to stop (with the log's close after it).
STOP_WITHIN_S = 2.0


class LogTailer:
    def __init__(
        self, log_: EventLog, engine: Engine, feed: ChangeFeed | None = None, batch: int = 2000
    ) -> None:
        self.log = log_
        self.engine = engine
        self.feed = feed
        self.batch = batch
        # On Kafka, what fails goes to the dead-letter topic too, as the workers send it.
        self.applier = BatchApplier(
            engine, on_dead=dead_letter_sink(log_), settled=log_settled(log_)
        )
        self._stop = threading.Event()
        self._stop_by = 0.0  # when a requested stop stops waiting for the thread
        self._thread: threading.Thread | None = None
        # Partitions reading again after a pause are applied only on the same log (`Pauses`).
        self.pauses = Pauses()
        self.error: BaseException | None = None
        self._live = False  # past catch_up: time from append to read model is measured

    @property
    def positions(self) -> dict[int, int]:
        return self.applier.positions

    def step(self) -> int:
        """Apply at most one batch per partition; return how many records moved a position."""
        moved = 0
        blocked = False
        for p in self.log.partitions():
            if self._stop.is_set():  # told to stop: begin no read, nor apply one come late
                break
            before = self.positions.get(p, 0)
            records = self.log.read(p, before, self.batch)
            if not records or self._stop.is_set():
                continue
            if self.pauses.resumed([p]):
                refuse_replaced_at(self.log, self.applier.marks_when_reachable(), [p])
            applied = self.applier.apply(records)
            metrics.observe_applied(applied.records, applied.recorded_at if self._live else ())
            blocked |= bool(applied.blocked)
            moved += self.positions.get(p, 0) - before
            if self.feed is not None:
                self.feed.publish(applied.summary.campaigns, applied.summary.counted > 0)
        if blocked and not moved:
            time.sleep(BLOCKED_PAUSE_S)
        return moved

    def catch_up(self) -> int:
        """Apply until the read model holds everything the log held when called."""
        target = self.log.end_offsets()
        total = 0
        from services.aggregate.replay import backlog, replay

        if backlog(target, self.positions) >= LONG_BACKLOG:
            # A long way behind (a read model started afresh beside a long log): as replay
            # does it, in big batches written behind (from a child process on SQLite).

            caught = 0

            def progress(p: ReplayProgress) -> None:
                nonlocal caught
                metrics.observe_applied(p.done - caught, ())
                caught = p.done

            # Its refusals go to the dead-letter topic too, as the live applier's do (before
            # 2026-12-06 they were kept in the read model only).
            total = replay(
                self.log, self.engine, on_progress=progress, on_dead=self.applier.on_dead
            ).done
            self.applier.refresh()
        while not all(
            holds_all(self.log, p, self.positions.get(p, 0), end) for p, end in target.items()
        ):
            total += self.step()
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aggregate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._live = True
        outage_since: float | None = None
        try:
            while not self._stop.is_set():
                try:
                    if self.step() == 0:
                        # Nothing to read: maybe the log ends before the positions (a broker
                        # that lost its data). Its new records would be taken for those
                        # applied at their offsets: stop (LogLost) rather than wait for them.
                        refuse_lost(self.positions, self.log.end_offsets())
                        self.log.wait(self.positions, 0.5)
                    outage_since = None
                except (KafkaError, OSError) as e:
                    if self._stop.is_set():  # left behind by a stop: nothing to read again
                        return
                    # Nothing advanced: the same records are read again once the log answers
                    # (whether it is still the same log is looked at then).
                    self.pauses.forget(self.log.partitions())
                    now = time.monotonic()
                    outage_since = outage_since if outage_since is not None else now
                    if now - outage_since > LOG_OUTAGE_LIMIT_S:
                        raise
                    log.warning("log unreadable (%s); retrying", e)
                    self._stop.wait(1.0)
        except BaseException as e:  # stop loudly: advancing past a failed batch would lose it
            if self._stop.is_set():
                # Left behind by a stop (`stop`), its call failed once the log closed under
                # it: nothing of its batch committed, and the next start applies it.
                log.info("aggregator: stopped mid-batch (%s): applied at the next start", e)
                return
            self.error = e
            log.exception("aggregator stopped")
            raise

    def request_stop(self, within: float = STOP_WITHIN_S) -> None:
        """Tell the tailer to stop, reading and applying nothing new; `stop` then waits for
        it until `within` s from now. A hub asks this first, so the tailer's bound runs beside
        the gRPC server's grace rather than after it."""
        if not self._stop.is_set():
            self._stop_by = time.monotonic() + within
            self._stop.set()

    def stop(self, timeout: float = STOP_WITHIN_S) -> None:
        """Stop the tailer within `timeout` s (STOP_WITHIN_S) of the stop's request, whatever
        the log does."""
        self.request_stop(timeout)
        if self._thread is None:
            return
        self._thread.join(timeout=max(0.0, self._stop_by - time.monotonic()))
        if self._thread.is_alive():
            log.warning(
                "aggregator: stopping, still waits on the log or the read model after %.0f s: "
                "left to the process's exit; what it has not applied is applied at the next "
                "start",
                timeout,
            )

    def run_until(
        self, stopped: Callable[[float], bool], failed: Callable[[], bool] = lambda: False
    ) -> None:
        """Return once `stopped(1.0)` says a stop came, `failed()` holds (another part of the
        service failed), or the tailer itself stopped loudly, said here at ERROR: a service
        then ends, so a supervisor starts it again."""
        while not stopped(1.0):
            if failed():
                return
            if self.error is not None:
                log.error("the aggregator stopped: %s", self.error)
                return
