"""The Kafka log's appender closes once: a second close (a process's stop after its log was
closed on a failure) must neither wait out the timeout on a stopped event loop nor leave a
coroutine that was never awaited. No broker needed: the producer starts on first append."""

from __future__ import annotations

import gc
import time
import warnings

from duhub.log.kafka import KafkaSpec, _Appender


def test_closing_twice_returns_at_once_and_leaves_no_coroutine_behind() -> None:
    appender = _Appender(KafkaSpec("127.0.0.1:1"), None, 12)
    appender.close(timeout=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.monotonic()
        appender.close(timeout=5)
        took = time.monotonic() - t0
        gc.collect()
    assert took < 1.0
    assert not [w for w in caught if "never awaited" in str(w.message)]
