"""Which partitions deliver records again after a pause: a log made again (a topic deleted and
made again, a broker that lost its data) that grew past the read model's positions while no
reader looked delivers its records at the offsets that follow, as if nothing happened. Such a
partition's records are applied only once the log is found to hold the record the read model
applied last there (`duhub.log.belongs.refuse_replaced`): one read of a record per pause,
never per batch of a busy partition (~20 ms a look on Kafka, by measure)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

# Delivering nothing for this long makes a pause; deleting a topic and making it again, and
# filling it past a position, takes longer.
RESUME_CHECK_S = 1.0


class Pauses:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._delivered: dict[int, float] = {}  # partition -> when it last delivered

    def resumed(self, delivering: Iterable[int]) -> set[int]:
        """Note that these partitions deliver now; return those that come back from a pause
        (or deliver for the first time)."""
        now = self.clock()
        parts = set(delivering)
        out = {
            p for p in parts if now - self._delivered.get(p, now - RESUME_CHECK_S) >= RESUME_CHECK_S
        }
        self._delivered.update(dict.fromkeys(parts, now))
        return out

    def forget(self, partitions: Iterable[int]) -> None:
        """The next delivery of these is a resumption (given away, or the log failed)."""
        for p in partitions:
            self._delivered.pop(p, None)
