"""The aggregate worker's watchdog (ContiguousDriver.stalled) stops a worker whose partitions
have had records waiting for STALL_S with nothing handled, not one that was idle that long and
whose first records have just come. Before 2026-12-05 it asked how long since the last batch,
then whether records waited: a worker idle over a minute was stopped (exit 70, "no batch
handled for 60.0 s while its partitions have records to apply") a moment after publishing
resumed, seen on a live deployment, before it could take them."""

from __future__ import annotations

from pathlib import Path

import pytest

from duhub.log.base import LogRecord
from duhub.readmodel.engine import open_engine
from services.aggregate import driver as driver_module
from services.aggregate.driver import ContiguousDriver


class Log:
    """A one-partition log that says where it ends and holds a record at every offset."""

    def __init__(self) -> None:
        self.end = 0

    def end_offsets(self) -> dict[int, int]:
        return {0: self.end}

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        return [LogRecord(partition, offset, b"", b"")] if offset < self.end else []


class Clock:
    """The driver's monotonic clock, moved by the test alone: the real one moved 0.2 s
    between two of its looks whenever a loaded host left the test's thread unscheduled."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_records_just_come_after_a_long_idle_are_not_a_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(driver_module, "time", clock)
    log = Log()
    driver = ContiguousDriver(log, open_engine(f"sqlite:///{tmp_path / 'rm.db'}"))  # type: ignore[arg-type]
    try:
        driver.last_handled = clock.now - 120  # idle for two minutes: nothing came
        assert not driver.stalled({0}, 60.0)
        log.end = 40  # publishing resumes
        assert not driver.stalled({0}, 60.0)  # they have waited for no time yet
        assert not driver.stalled({0}, 0.2)
        clock.now += 0.3
        assert driver.stalled({0}, 0.2)  # waited 0.2 s with nothing handled: wedged
        driver.last_handled = clock.now  # a batch handled: not wedged after all
        assert not driver.stalled({0}, 0.2)
    finally:
        driver.writer.close()
