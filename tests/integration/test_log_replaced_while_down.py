"""The Kafka topic is deleted and made again while every duhub service is down, and
Kafka-direct producers write more records to the new topic than the read model's positions:
offsets alone cannot tell (the log ends past the read model). Started again, the aggregate
worker and ingest refuse, exit 2, naming the partition, the offset of the record the read model
applied last and that the log holds another there.

Before 2026-12-05 both started: the worker took the new topic's records below the old position
for applied ones and applied only those past it, so the figures silently missed events."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kafka import KafkaProducer

from duhub.log.kafka import KafkaSpec
from duhub.v1 import ingest_pb2 as ipb
from tests.e2e.hubproc import DUHUB, serve, stat_values
from tests.infra import ORIGIN_KEY, fresh_database, kafka_bootstrap, postgres_url
from tests.integration.chaos import private_kafka, remake_topic, wait_health
from tests.integration.scale import accountability, ends_of, publish, wait_applied

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

COUNTY = "420502"
PERSONS = ("--metric", "accountability_persons")
BEFORE = 30  # events applied from the first topic
PAST = 10  # records of the new topic past the read model's position


def _produce(spec: KafkaSpec, first_seq: int, n: int) -> int:
    """Write n Kafka-direct events of COUNTY; return the offset after the last."""
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
    try:
        sent = [
            producer.send(
                spec.topic,
                key=COUNTY.encode(),
                value=accountability(COUNTY, s, 1).SerializeToString(),
            )
            for s in range(first_seq, first_seq + n)
        ]
        producer.flush()
        return max(f.get(timeout=30).offset for f in sent) + 1
    finally:
        producer.close()


def test_services_refuse_a_topic_made_again_past_the_read_model(tmp_path: Path) -> None:
    postgres_url()  # skips (fails under CI) without the servers
    kafka_bootstrap()
    with private_kafka() as kafka, fresh_database() as db_url:
        log_url = f"kafka://{kafka.bootstrap}?partitions=1&key={ORIGIN_KEY}"
        spec = KafkaSpec.parse(log_url)
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        query = serve("query", "--db", db_url, "--data-dir", str(tmp_path))
        worker, ingest = serve("aggregate", *opts), serve("ingest", *opts)
        try:
            # Not before ingest loaded the reference: an event published in between is rejected
            # (its county not registered yet).
            wait_health(ingest.address, "", "SERVING", timeout=60)
            first = publish(
                ingest.address, [accountability(COUNTY, s, 1) for s in range(1, BEFORE + 1)]
            )
            assert all(r.result == ipb.RESULT_ACCEPTED for r in first), [
                (r.result, r.reason) for r in first
            ]
            wait_applied(query.address, ends_of(first))
            held = ends_of(first)[0]  # the reference ingest loaded, and these
            for proc in (worker, ingest):
                assert proc.stop() == 0
            assert stat_values(query.address, *PERSONS) == {"accountability_persons": BEFORE}

            remake_topic(spec)
            end = _produce(spec, BEFORE + 1, held + PAST)
            assert end == held + PAST

            for service in ("aggregate", "ingest"):
                args = [DUHUB, "serve", service, *opts]
                if service == "ingest":
                    args += ["--listen", "127.0.0.1:0"]
                started = subprocess.Popen(
                    args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
                try:
                    code = started.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    code = None
                    if service == "aggregate":  # what it made of the new topic
                        wait_applied(query.address, {0: end}, timeout=60)
                finally:
                    if started.poll() is None:
                        started.terminate()
                        started.wait(timeout=30)
                out = started.stdout.read() if started.stdout else ""
                figures = stat_values(query.address, *PERSONS)
                print(f"--- {service} (exit {code}), figures {figures}:\n{out[-3000:]}")
                # Every event of both topics is in the figures, or none past the old ones is.
                assert figures == {"accountability_persons": BEFORE}, "events lost"
                assert code == 2, f"{service} started on the topic made again ({code})"
                assert (
                    f"--db: the read model was built from another log (partition 0: the record "
                    f"it applied last, at offset {held - 1}, is not the log's" in out
                ), out[-3000:]
        finally:
            for p in (worker, ingest, query):
                p.stop()
