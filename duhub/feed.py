"""In-process change feed: the aggregator says what changed, live queries wake up."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class ChangeFeed:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.version = 0
        self._campaigns: dict[str, int] = {}
        self._everything = 0
        self._closed = False

    def publish(self, campaigns: Iterable[str], counted: bool) -> None:
        """Record that a batch changed these campaigns' coverage (and statistics if counted)."""
        with self._cond:
            self.version += 1
            for c in campaigns:
                self._campaigns[c] = self.version
            self._cond.notify_all()

    def publish_all(self) -> None:
        """Record that anything may have changed (the source of changes cannot say what)."""
        with self._cond:
            self.version += 1
            self._everything = self.version
            self._cond.notify_all()

    def _version_of(self, campaign_id: str) -> int:
        return max(self._campaigns.get(campaign_id, 0), self._everything)

    def campaign_version(self, campaign_id: str) -> int:
        with self._cond:
            return self._version_of(campaign_id)

    def wait_campaign(
        self,
        campaign_id: str,
        seen: int,
        timeout: float,
        ended: threading.Event | None = None,
    ) -> int:
        """Block until the campaign changes past version `seen`, or `ended` is set (and
        wake() called: a watcher whose client went); return its version."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._closed
                    or self._version_of(campaign_id) > seen
                    or (ended is not None and ended.is_set())
                ),
                timeout,
            )
            return self._version_of(campaign_id)

    def wake(self) -> None:
        """Wake every waiter to look again at what it waits for (an `ended` set)."""
        with self._cond:
            self._cond.notify_all()

    def wait_any(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self.version > seen, timeout)
            return self.version

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
