"""The kafka:// log URL: what it names, and a clear refusal of what it does not know."""

from __future__ import annotations

import re

import pytest

from duhub.log.kafka import EVENTS_TOPIC, KafkaSpec
from duhub.log.spec import is_kafka


def test_the_documented_options_are_read() -> None:
    spec = KafkaSpec.parse("kafka://b1:9092,b2:9092?topic=t&partitions=3&replication=2&key=/k")
    assert spec == KafkaSpec("b1:9092,b2:9092", "t", 3, 2, "/k")
    assert KafkaSpec.parse("kafka://b:9092").topic == EVENTS_TOPIC


@pytest.mark.parametrize("option", ["topik", "Topic", "partition", "keyfile"])
def test_an_unknown_option_is_refused_naming_it(option: str) -> None:
    # Before, an unknown option was dropped: ?topik=mine (a typo) ran ingest and the workers
    # on the default topic duhub.events.v1, another hub's, without a word.
    with pytest.raises(ValueError, match=f"--log: unknown option '{option}' in kafka://b:9092"):
        KafkaSpec.parse(f"kafka://b:9092?{option}=mine")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # parse_qs drops a blank value: ?key= (an unset $ORIGIN_KEY) ran the workers without
        # the origin check, ingest's header taken at its word; ?topic= on the default topic.
        ("key=", "--log: key: empty in kafka://b:9092?key="),
        ("topic=", "--log: topic: empty in kafka://b:9092?topic="),
        ("topik=", "--log: unknown option 'topik'"),
        ("topic", "--log: topic: empty"),
        # The first was taken, the second dropped without a word.
        ("topic=a&topic=b", "--log: topic: given twice in kafka://b:9092?topic=a&topic=b"),
        # 0 reached the broker ('cannot reach …: InvalidPartitionsError', 2 KB of request);
        # -1 made a topic of the broker's default partition count.
        ("partitions=0", "--log: partitions: must be a whole number from 1, not '0'"),
        ("partitions=-1", "--log: partitions: must be a whole number from 1, not '-1'"),
        ("replication=x", "log: replication: must be a whole number from 1, not 'x'"),
    ],
)
def test_a_bad_option_value_is_refused_naming_the_option(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        KafkaSpec.parse(f"kafka://b:9092?{query}")


@pytest.mark.parametrize(
    ("spec", "meant"),
    [
        ("kafka//127.0.0.1:9092", "kafka://127.0.0.1:9092"),
        ("kafka:/b:9092", "kafka://b:9092"),
        ("Kafka://b:9092", "kafka://b:9092"),
        ("KAFKA:b:9092", "kafka://b:9092"),
        ("kafka-data", "kafka://HOST:PORT"),
    ],
)
def test_a_mistyped_kafka_url_is_no_directory(spec: str, meant: str) -> None:
    # Before 2026-12-06 each was a data directory path: ./kafka/127.0.0.1:9092/events.log.
    with pytest.raises(ValueError, match=re.escape(f"--log: {spec!r} is neither")) as e:
        is_kafka(spec)
    assert f"give {meant} (lower case, both slashes)" in str(e.value)
    assert f"as ./{spec}" in str(e.value)


@pytest.mark.parametrize(
    ("spec", "kafka"), [("kafka://b:9092", True), ("data", False), ("./kafka", False)]
)
def test_a_kafka_url_and_a_directory_are_told_apart(spec: str, kafka: bool) -> None:
    assert is_kafka(spec) is kafka
