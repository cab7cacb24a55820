"""Let aiokafka's consumer stop while a failed fetch waits to retry (aiokafka 0.14.0).

Its Fetcher.close cancels the fetches in flight and awaits each: one that had failed and
slept its retry backoff ends cancelled, and awaiting it raised CancelledError out of close(),
so the consumer's stop failed half way. Faust's consumer thread then never said it had shut
down, and a worker stopped in the moments after an assignment (it fetches until it pauses the
partitions) waited 60 s, mode's shutdown timeout, before it exited
(tests/integration/test_consumer_stop_mid_fetch.py). Here close waits for them without taking
their outcome, as it already does for its fetch routine. (Upstream: aio-libs/aiokafka#647, a
stop raising CancelledError, open.)
"""

from __future__ import annotations

import asyncio

import aiokafka
from aiokafka.consumer.fetcher import Fetcher

PATCHED_VERSION = "0.14.0"  # the version pinned; a later one may have changed close() itself


async def _close(self: Fetcher) -> None:
    self._closed = True
    self._fetch_task.cancel()
    # asyncio.wait takes no outcome from what it waits for; a cancel of close() itself still
    # propagates.
    await asyncio.wait([self._fetch_task])
    for waiter in self._fetch_waiters:  # fail the pending fetchone/fetchall calls
        self._notify(waiter)
    pending = list(self._pending_tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


def install() -> None:
    """Replace Fetcher.close, on the aiokafka version this fixes only."""
    if aiokafka.__version__ == PATCHED_VERSION:
        Fetcher.close = _close  # type: ignore[method-assign]
