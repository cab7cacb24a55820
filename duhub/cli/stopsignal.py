"""Wait in a server's main thread until SIGINT or SIGTERM asks it to stop, losing none.

A handler that sets a threading.Event lost a signal now and then: one that came just before
the main thread went to sleep in Event.wait() ran no handler until something woke it (the
lock's wait is not interrupted by a signal already handled in C), and a handler run while
wait() held the Event's own lock deadlocked on it in set(). The server then ignored `kill`.
Instead, the interpreter's C handler writes each signal to a pipe (signal.set_wakeup_fd),
whoever the thread it lands in, and the main thread waits for the pipe to be readable: a
signal that came before the wait leaves it readable, so none is lost.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from datetime import timedelta
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """Nothing to do here: the C handler has written the signal to the pipe already."""


class StopSignals:
    """While entered, SIGINT and SIGTERM are noted instead of ending the process; wait()
    returns once one has come (at any time since entering). Main thread only."""

    def __init__(self) -> None:
        self._read = self._write = -1
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._came: signal.Signals | None = None

    def __enter__(self) -> StopSignals:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # set_wakeup_fd refuses a blocking one
        # One byte is enough: a full pipe means a stop is noted already.
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, _noted)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Return True once a stop signal has come, False if `timeout` seconds pass first."""
        if self._came is not None:
            return True
        ready, _, _ = select.select([self._read], [], [], timeout)
        return bool(ready)

    def noted(self) -> signal.Signals | None:
        """Return the stop signal that has come, without waiting; None while none has. For a
        caller that hands the stop on to handlers of its own (Faust's loop, once it listens)."""
        if self._came is None and self.wait(0):
            self._came = signal.Signals(os.read(self._read, 1)[0])
        return self._came

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read)
        os.close(self._write)


def log_stopped(
    log: logging.Logger, what: str, came: signal.Signals | str | None, since: float
) -> None:
    """Log that `what` stops, why (the signal that came, or what failed) and how long it ran
    (from `since`, time.monotonic): as the aggregate worker says it stops. Before 2026-12-07
    ingest, query and `duhub up` ended without a line: a stop could not be told from a kill."""
    ran = timedelta(seconds=int(time.monotonic() - since))
    why = came.name if isinstance(came, signal.Signals) else came or "stopping"
    log.info("%s stops (%s): ran for %s", what, why, ran)
