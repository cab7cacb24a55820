"""A Kafka-direct record its topic took can be too large for the dead-letter topic once the
dead letter's headers are added (a county's ~1 MiB value on a broker's default
`message.max.bytes`; or an events topic whose `max.message.bytes` was raised). Its dead
letter failed with MessageSizeTooLargeError, the batch did not commit, the worker stopped
("aggregate worker stops: a batch failed"), and every worker after it stopped on the same
record: nothing more of any county was counted (found by review, 2026-12-07, with a
1,048,490-byte value on the shared broker). Such a dead letter now goes without its value,
which stays in the log at the offset its headers name."""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from duhub.log.kafka import EVENT_ID_HEADER, VALUE_OMITTED_HEADER, KafkaSpec
from tests.integration.test_kafka_direct import (
    applier_sending_dead_letters,
    county_records,
    dead_letters,
)
from tests.unit.builders import YIDU, YIDU_T1, letter

# The dead-letter topic's limit here, so the test needs no 1 MiB record.
DLQ_MAX_BYTES = 2000


def limit_dead_letters(spec: KafkaSpec) -> None:
    admin = KafkaAdminClient(bootstrap_servers=spec.bootstrap)
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    spec.dlq_topic,
                    configs={"max.message.bytes": str(DLQ_MAX_BYTES)},
                )
            ]
        )
    finally:
        admin.close()
    time.sleep(1)  # the broker applies a topic's new config at once; its followers soon after


def test_a_dead_letter_too_large_for_its_topic_goes_without_its_value_and_the_worker_goes_on(
    tmp_path: Path,
) -> None:
    with applier_sending_dead_letters(tmp_path) as (spec, applier):
        limit_dead_letters(spec)
        # Refused (letter_id over 128 characters), and with the headers past the limit.
        big = letter("L" * (DLQ_MAX_BYTES - 80), YIDU_T1, event_id="big", source=YIDU, seq=1)
        small = letter("x" * 129, YIDU_T1, event_id="small", source=YIDU, seq=2)
        values = [big.SerializeToString(), small.SerializeToString()]
        assert DLQ_MAX_BYTES - 100 < len(values[0]) < DLQ_MAX_BYTES
        done = applier.apply(county_records(values))
        assert [d.event_id for d in done.dead] == ["big", "small"]
        assert applier.positions[0] == 2
        (big_value, big_headers), (small_value, small_headers) = dead_letters(spec, want=2)
        assert big_value == b""
        assert big_headers[EVENT_ID_HEADER] == "big"
        assert big_headers["duhub-offset"] == "0"
        assert big_headers[VALUE_OMITTED_HEADER].startswith(f"{len(values[0])} bytes")
        # The dead-letter producer still sends after the broker refused a record.
        assert small_value == values[1] and VALUE_OMITTED_HEADER not in small_headers
