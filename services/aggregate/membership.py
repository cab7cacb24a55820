"""Whether the group still knows this worker, told by how its commits are answered.

A worker the group coordinator dropped (its session ran out: a paused VM, a path to the broker
lost a while) rejoins at its next poll. A chaos probe (2026-12-07) saw one whose rejoin never
came: aiokafka kept its old assignment, so it went on applying partitions the group had given
another worker, each batch then fighting the other's over the read model's positions (which
kept the figures right) while every commit was refused "UnknownMemberId … will rejoin" for 7
minutes. Refused that long, the worker is better stopped: a supervisor starts it again, and it
joins as a new member."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CommitRefused(Exception):
    """The group refused a commit as a member's: Faust's consumer answers False for aiokafka's
    CommitFailedError "already rebalanced" (the coordinator's UnknownMemberId,
    IllegalGeneration or RebalanceInProgress), where any other failure crashes it."""


class Membership:
    """How long the group has refused every commit of this worker as a member's."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._refused_since: float | None = None
        self.reason = ""

    def committed(self) -> None:
        with self._lock:
            self._refused_since = None
            self.reason = ""

    def failed(self, e: BaseException) -> None:
        if not isinstance(e, CommitRefused):
            return  # a broker away: neither a member's refusal nor a commit taken
        with self._lock:
            if self._refused_since is None:
                self._refused_since = self._clock()
            self.reason = str(e) or type(e).__name__

    def refused_for(self) -> float:
        """Seconds since the first of the refusals in a row (0: the last commit was taken)."""
        with self._lock:
            since = self._refused_since
        return 0.0 if since is None else self._clock() - since
