"""Hold back a library's line repeated many times a second.

In a Kafka outage aiokafka's producer tries every node again at once for each batch it holds,
and logs each try: ingest wrote ~8,000 "Unable connect to node with id 1" lines a second for
the first ten seconds (12.5 MB in two outages, a chaos probe), burying duhub's own lines that
say what happened. A library's line (by logger and message template) goes out once, and then
at most once every `every` seconds, saying how many like it were held back; duhub's own
lines are never held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

EVERY_S = 10.0
# Templates tracked at most: a library's messages are a fixed set; past this, all pass.
MAX_KEYS = 1_000


class RepeatFilter(logging.Filter):
    """Pass the first of a library's lines of one template, then one every `every` seconds
    with the count of those held back since."""

    def __init__(
        self,
        libraries: Iterable[str],
        every: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.libraries = frozenset(libraries)
        self.every = every
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # last passed, held

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in self.libraries:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) < MAX_KEYS:
                self._seen[key] = (now, 0)
            return True
        passed_at, held = seen
        if now - passed_at < self.every:
            self._seen[key] = (passed_at, held + 1)
            return False
        self._seen[key] = (now, 0)
        if held:
            # Said once, in the line that goes out: formatted already, so args stay as given.
            record.msg = (
                f"{record.getMessage()} ({held} more like it held back in {now - passed_at:.0f} s)"
            )
            record.args = None
        return True
