"""A Kafka consumer stopped while a fetch of its had failed and waited to retry, on a real
broker: it stops. aiokafka 0.14's fetcher cancelled that fetch and awaited it, which raised
CancelledError out of its close(): Faust's consumer thread then never said it had shut down,
and `duhub serve aggregate` sent SIGTERM in the moments after its first assignment (fetching
before it paused the partitions) hung 60 s before it exited (3 in ~180 runs of TERM at random
delays after the banner)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

import services.aggregate.faust_app  # noqa: F401 - what the worker runs with (its fixes)
from duhub.log.kafka import KafkaSpec
from tests.infra import kafka_log_url


async def _stop_mid_retry(bootstrap: str, topic: str) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=20_000,  # the broker holds the fetch: it is in flight for long
        retry_backoff_ms=30_000,  # a failed fetch waits this long before it retries
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    fetcher = consumer._fetcher
    deadline = time.monotonic() + 20
    while not fetcher._pending_tasks:
        assert time.monotonic() < deadline, "no fetch went out"
        await asyncio.sleep(0.05)
    for conn in list(consumer._client._conns.values()):
        conn.close()  # the fetch in flight fails; it waits its backoff to retry
    await asyncio.sleep(0.5)
    assert fetcher._pending_tasks, "the failed fetch should be waiting to retry"
    await asyncio.wait_for(consumer.stop(), 10)


def test_a_consumer_stopped_while_a_failed_fetch_waits_to_retry_stops() -> None:
    spec = KafkaSpec.parse(kafka_log_url(partitions=1))
    admin = KafkaAdminClient(bootstrap_servers=spec.bootstrap)
    try:
        admin.create_topics([NewTopic(spec.topic, 1, 1)])
    finally:
        admin.close()
    # Before: asyncio.CancelledError out of consumer.stop().
    asyncio.run(_stop_mid_retry(spec.bootstrap, spec.topic))
