"""The aggregate worker's watchdog (ContiguousDriver.stalled) stops a worker whose partitions
have had records waiting for STALL_S with nothing handled, not one that was idle that long and
whose first records have just come. Before 2026-12-05 it asked how long since the last batch,
then whether records waited: a worker idle over a minute was stopped (exit 70, "no batch
handled for 60.0 s while its partitions have records to apply") a moment after publishing
resumed, seen on a live deployment, before it could take them."""

from __future__ import annotations

import time
from pathlib import Path

from duhub.log.base import LogRecord
from duhub.readmodel.engine import open_engine
from services.aggregate.driver import ContiguousDriver


class Log:
    """A one-partition log that says where it ends and holds a record at every offset."""

    def __init__(self) -> None:
        self.end = 0

    def end_offsets(self) -> dict[int, int]:
        return {0: self.end}

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        return [LogRecord(partition, offset, b"", b"")] if offset < self.end else []


def test_records_just_come_after_a_long_idle_are_not_a_stall(tmp_path: Path) -> None:
    log = Log()
    driver = ContiguousDriver(log, open_engine(f"sqlite:///{tmp_path / 'rm.db'}"))  # type: ignore[arg-type]
    try:
        driver.last_handled = time.monotonic() - 120  # idle for two minutes: nothing came
        assert not driver.stalled({0}, 60.0)
        log.end = 40  # publishing resumes
        assert not driver.stalled({0}, 60.0)  # they have waited for no time yet
        assert not driver.stalled({0}, 0.2)
        time.sleep(0.3)
        assert driver.stalled({0}, 0.2)  # waited 0.2 s with nothing handled: wedged
        driver.last_handled = time.monotonic()  # a batch handled: not wedged after all
        assert not driver.stalled({0}, 0.2)
    finally:
        driver.writer.close()
