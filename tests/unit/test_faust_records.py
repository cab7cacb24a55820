"""A record the Faust worker is handed carries the same time as the log's reader gives for
it (replay, lineage): Kafka-direct events take the log's time as their recorded_at."""

from __future__ import annotations

from types import SimpleNamespace

from duhub.log.kafka import INGEST_ORIGIN, ORIGIN_HEADER, to_record
from services.aggregate.faust_app import _record


def test_a_faust_message_and_a_log_read_of_it_have_the_same_time() -> None:
    millis = 1_700_000_000_123  # Kafka's timestamps are whole milliseconds
    headers = [(ORIGIN_HEADER, INGEST_ORIGIN)]
    # Faust gives the time in seconds as a float; kafka-python in milliseconds.
    faust_message = SimpleNamespace(
        partition=3, offset=7, key=b"k", value=b"v", timestamp=millis / 1000, headers=headers
    )
    log_message = SimpleNamespace(
        partition=3, offset=7, key=b"k", value=b"v", timestamp=millis, headers=headers
    )
    handed = _record(faust_message)
    read = to_record(log_message)
    assert handed.timestamp_ns == read.timestamp_ns == millis * 1_000_000
    assert handed == read
