"""Answers kept while the read model stays as it was when they were computed.

Dashboards ask the same questions over and over, and the read model changes only when the
aggregator commits. Every commit moves the applied log positions (they commit with the rows),
so an answer is reused only while the positions read at request time equal those read before
it was computed: a request never sees less than what GetProgress already shows. The change
feed is not used for this: it lags a commit (SQLite is polled every quarter second).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine

from duhub.readmodel.positions import PositionsReader

T = TypeVar("T")

DEFAULT_SIZE = 512
# The most --answer-cache may ask for: past it the byte bound decides anyway (answers and keys
# of ~32 bytes at the least).
MAX_SIZE = 1_000_000
# The answers kept weigh at most this much, as serialized (in memory they take about 3.5 times
# as much, ~110 MB measured with the cache full). A count alone bounds nothing: a
# GetStatistics by day over 5,000 days is ~2.8 MB, and 512 of them, each with `from` a second
# apart, took a hub to 4.9 GB.
MAX_BYTES = 32 * 1024 * 1024


def _weight(value: object) -> int:
    """Return an answer's serialized size (a protobuf message's); 0 for anything else."""
    byte_size = getattr(value, "ByteSize", None)
    return byte_size() if callable(byte_size) else 0


class AnswerCache:
    """Up to `size` answers (0: none kept) of at most `max_bytes` in all, keyed by the
    caller-scoped request; the least recently used go first."""

    def __init__(self, engine: Engine, size: int = DEFAULT_SIZE, max_bytes: int = MAX_BYTES):
        self.engine = engine
        self.positions = PositionsReader(engine)  # GetProgress reads them here too
        self.size = size
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._version: tuple[tuple[int, int], ...] | None = None
        self._answers: OrderedDict[bytes, tuple[object, int]] = OrderedDict()
        self.kept_bytes = 0  # what the answers kept weigh, with their keys
        self.hits = self.misses = 0

    def answer(self, key: bytes, compute: Callable[[], T]) -> T:
        """Return the answer kept for `key` at the current positions, else compute it.
        Answers are shared: callers must not change them."""
        if self.size <= 0:
            return compute()
        version = tuple(sorted(self.positions.read().items()))
        with self._lock:
            if version != self._version:
                self._version = version
                self._answers.clear()
                self.kept_bytes = 0
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
                self.hits += 1
                return found[0]  # type: ignore[return-value]
            self.misses += 1
        # Computed outside the lock, possibly from a later state than `version`: that only
        # makes it fresher, and the next request at a later version will not reuse it.
        value = compute()
        weight = len(key) + _weight(value)
        if weight > self.max_bytes:
            return value  # kept, it would push out every other answer
        with self._lock:
            if version == self._version and key not in self._answers:
                self._answers[key] = (value, weight)
                self.kept_bytes += weight
                while len(self._answers) > self.size or self.kept_bytes > self.max_bytes:
                    _, (_, gone) = self._answers.popitem(last=False)
                    self.kept_bytes -= gone
        return value
