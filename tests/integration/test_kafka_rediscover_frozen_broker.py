"""`KafkaLog.rediscover` asks the broker for metadata while holding the reader's lock, and
kafka-python 3.0.12's `KafkaConsumer.topics()` sets itself no deadline: it waits on a future
that only a metadata answer or a failed request settles. A broker that stops answering fails
that request after the reader's request timeout (`request_timeout_ms`, 30 s, the bound
`end_offsets` has too), so rediscover raises then and the lock is free again. A rediscover
that waited until answered (a retry loop, or a client that never fails the request) would
hold every other reader call behind it for as long as the broker stays silent; this guards
against that, through a kafka-python upgrade too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaConsumer
from kafka.errors import KafkaError

from duhub.log.kafka import KafkaLog, KafkaSpec
from tests.flakylink import FrozenBroker, run_for
from tests.infra import ORIGIN_KEY, kafka_bootstrap, unique

pytestmark = [pytest.mark.kafka]

# The reader's request timeout, shortened from kafka-python's 30 s to keep the test short.
REQUEST_TIMEOUT_MS = 2000
# Past it, for a loaded machine; far below what an unbounded wait would take.
MARGIN_S = 4.0


def _outcome_within(call: Callable[[], object], limit_s: float) -> object:
    """Return what `call` returned or raised, failing the test if it is still waiting after
    `limit_s` (in a thread, so a call that never returns fails the test instead of hanging it)."""
    done = run_for(call, limit_s)
    assert done, f"still waiting after {limit_s:g} s"
    return done[0]


def test_rediscover_gives_up_when_the_broker_never_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(KafkaConsumer.DEFAULT_CONFIG, "request_timeout_ms", REQUEST_TIMEOUT_MS)
    link = FrozenBroker(kafka_bootstrap())
    topic = unique("duhub.test.")
    log = None
    try:
        log = KafkaLog(
            KafkaSpec.parse(f"kafka://{link.address}?topic={topic}&partitions=2&key={ORIGIN_KEY}")
        )
        assert log.rediscover() == [0, 1]  # through the link, while the broker answers
        link.freeze()
        outcome = _outcome_within(log.rediscover, REQUEST_TIMEOUT_MS / 1000 + MARGIN_S)
        assert isinstance(outcome, KafkaError), outcome
        # The reader's lock is free again, and the partitions known are kept.
        assert _outcome_within(log.partitions, 1.0) == [0, 1]
    finally:
        link.close()  # refused from now on: closing the log does not wait on a silent broker
        if log is not None:
            # Bounded too: a rediscover still waiting (the failure above) holds the lock it takes.
            run_for(log.close, 15.0)
