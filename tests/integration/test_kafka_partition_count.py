"""A --log naming ?partitions= for a topic that exists with another count: the count is used
only to make the topic, and a worker given 8 for a topic of 4 started without a word (ops
review, 2026-12-07), its operator believing in 8. It is said now, naming both counts."""

from __future__ import annotations

import logging
import re

import pytest

from duhub.log.kafka import KafkaSpec, ensure_topics
from tests.infra import kafka_log_url

pytestmark = [pytest.mark.kafka]


def test_a_partition_count_the_topic_does_not_have_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = kafka_log_url(partitions=4)
    ensure_topics(KafkaSpec.parse(url))  # made with 4
    caplog.set_level(logging.INFO, logger="duhub.log.kafka")
    for same in (url, re.sub(r"&?partitions=\d+", "", url)):  # as made, or not named: nothing
        ensure_topics(KafkaSpec.parse(same))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    ensure_topics(KafkaSpec.parse(url.replace("partitions=4", "partitions=8")))
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and "has 4 partitions, not the 8 --log names" in said[0], said
