"""Readers of history never make a topic: `duhub replay` of a misspelt ?topic= made it (and its
dead-letter topic) empty on the broker and answered "replayed 0 log records", exit 0, a digest
of nothing beside it; `duhub audit verify` waited 30 s for its partitions and ended in a
traceback (operator probe, 2026-12-06). Both now refuse at once, exit 2, naming the topic and
the topics the broker has."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from duhub.log.kafka import KafkaSpec
from tests.infra import kafka_log_url
from tests.unit.test_ops_cli import duhub


def topics(spec: KafkaSpec) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=spec.bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


@pytest.mark.parametrize("command", ["replay", "audit"])
def test_a_topic_not_on_the_broker_is_refused_and_not_made(tmp_path: Path, command: str) -> None:
    url = kafka_log_url(partitions=2)
    spec = KafkaSpec.parse(url)
    if command == "replay":
        into = f"sqlite:///{tmp_path / 'replayed.db'}"
        args = ("replay", "--log", url, "--into", into, "--no-compare")
    else:
        args = ("audit", "verify", "--log", url)
    done = duhub(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--log: no topic {spec.topic} on {spec.bootstrap}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "replayed" not in done.stdout
    assert not {spec.topic, spec.dlq_topic} & topics(spec)
    assert not (tmp_path / "replayed.db").exists()
