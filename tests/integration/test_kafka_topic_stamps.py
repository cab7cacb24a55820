"""The topic must stamp records with the broker's append time: a Kafka-direct event's
recorded_at (what as-of answers and audits go by) is the record's timestamp, and with
CreateTime that is whatever the producer set. The hub sets LogAppendTime on the topics it
makes; a topic made beforehand (ops' own tooling, a broker's auto-create) keeps the broker's
default, CreateTime. Before 2026-12-05 the hub used such a topic as it was: a county's record
sent with a timestamp of 2001 was recorded at 2001 (and refused 'occurred_at: more than 24
hours in the future' of that)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from duhub.log.kafka import KafkaLog, KafkaSpec
from tests.infra import kafka_log_url
from tests.unit.test_ops_cli import duhub


def made_beforehand(url: str) -> KafkaSpec:
    """Make the topic of `url` as a broker's defaults would: CreateTime."""
    spec = KafkaSpec.parse(url)
    admin = KafkaAdminClient(bootstrap_servers=spec.bootstrap)
    try:
        admin.create_topics([NewTopic(spec.topic, 1, 1)])
    finally:
        admin.close()
    return spec


def test_a_topic_stamped_by_its_producers_is_refused_naming_the_setting() -> None:
    spec = made_beforehand(kafka_log_url(partitions=1))
    with pytest.raises(ValueError) as refused:
        KafkaLog(spec)
    assert str(refused.value).startswith(
        f"log: topic {spec.topic} stamps records with CreateTime"
    ), refused.value
    assert "message.timestamp.type=LogAppendTime" in str(refused.value)


def test_serve_refuses_such_a_topic_with_exit_2(tmp_path: Path) -> None:
    url = kafka_log_url(partitions=1)
    made_beforehand(url)
    db = f"sqlite:///{tmp_path / 'readmodel.db'}"
    done = duhub("serve", "aggregate", "--log", url, "--db", db, "--data-dir", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "stamps records with CreateTime" in done.stderr and "Traceback" not in done.stderr
