"""kafka-python's network loop warns of every step over its threshold: at its 0.1 s default a
worker or ingest on a 2-core host logged one every 10-30 s, idle or not, which no repeat
filter held back (each names the task's address) and no operator could act on."""

from __future__ import annotations

from kafka.net.selector import NetworkSelector

from duhub.log import kafka as kafka_log


def test_a_network_step_is_said_to_be_slow_only_past_a_second() -> None:
    selector = NetworkSelector()
    try:
        assert selector.config["slow_task_threshold_secs"] == kafka_log.SLOW_NETWORK_STEP_S
        assert kafka_log.SLOW_NETWORK_STEP_S >= 1.0
        # Still said at all: a loop stalled for good is a livelock worth a line.
        assert selector.config["slow_task_threshold_secs"] > 0
    finally:
        selector.close()
