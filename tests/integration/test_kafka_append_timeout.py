"""An append the broker does not acknowledge in time says so. asyncio's TimeoutError carries
no text and is an OSError (Python 3.11), so it passed through `KafkaLog.append` as it was:
ingest answered "UNAVAILABLE: the log is not writable: " with nothing after the colon (found
by an operator probe, 2026-12-06, with the broker stopped under a publish)."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError

import duhub.log.kafka as kafka_log
from duhub.log.kafka import KafkaLog, KafkaSpec
from tests.infra import kafka_log_url

pytestmark = [pytest.mark.kafka]


def test_an_append_not_acknowledged_in_time_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    log = KafkaLog(KafkaSpec.parse(kafka_log_url(partitions=1)))
    try:
        # 0 ms: the real appender's own wait for the broker's acknowledgement runs out at
        # once (1 ms was flaky: a loopback broker sometimes acknowledged within it).
        monkeypatch.setattr(kafka_log, "DELIVERY_TIMEOUT_MS", 0)
        with pytest.raises(KafkaTimeoutError) as e:
            log.append([(b"420581", b"x" * 100)] * 50)
        assert "the broker did not acknowledge the append within 0 ms" in str(e.value), e.value
    finally:
        log.close()
