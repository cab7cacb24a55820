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

from duhub.readmodel.writer import read_positions

T = TypeVar("T")

DEFAULT_SIZE = 512


class AnswerCache:
    """Up to `size` answers (0: none kept), keyed by the caller-scoped request."""

    def __init__(self, engine: Engine, size: int = DEFAULT_SIZE) -> None:
        self.engine = engine
        self.size = size
        self._lock = threading.Lock()
        self._version: tuple[tuple[int, int], ...] | None = None
        self._answers: OrderedDict[bytes, object] = OrderedDict()
        self.hits = self.misses = 0

    def answer(self, key: bytes, compute: Callable[[], T]) -> T:
        """Return the answer kept for `key` at the current positions, else compute it.
        Answers are shared: callers must not change them."""
        if self.size <= 0:
            return compute()
        version = tuple(sorted(read_positions(self.engine).items()))
        with self._lock:
            if version != self._version:
                self._version = version
                self._answers.clear()
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
                self.hits += 1
                return found  # type: ignore[return-value]
            self.misses += 1
        # Computed outside the lock, possibly from a later state than `version`: that only
        # makes it fresher, and the next request at a later version will not reuse it.
        value = compute()
        with self._lock:
            if version == self._version:
                self._answers[key] = value
                if len(self._answers) > self.size:
                    self._answers.popitem(last=False)
        return value
