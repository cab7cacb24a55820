"""The kafka:// log URL: what it names, and a clear refusal of what it does not know."""

from __future__ import annotations

import pytest

from duhub.log.kafka import EVENTS_TOPIC, KafkaSpec


def test_the_documented_options_are_read() -> None:
    spec = KafkaSpec.parse("kafka://b1:9092,b2:9092?topic=t&partitions=3&replication=2&key=/k")
    assert spec == KafkaSpec("b1:9092,b2:9092", "t", 3, 2, "/k")
    assert KafkaSpec.parse("kafka://b:9092").topic == EVENTS_TOPIC


@pytest.mark.parametrize("option", ["topik", "Topic", "partition", "keyfile"])
def test_an_unknown_option_is_refused_naming_it(option: str) -> None:
    # Before, an unknown option was dropped: ?topik=mine (a typo) ran ingest and the workers
    # on the default topic duhub.events.v1, another hub's, without a word.
    with pytest.raises(ValueError, match=f"log: unknown option '{option}' in kafka://b:9092"):
        KafkaSpec.parse(f"kafka://b:9092?{option}=mine")
