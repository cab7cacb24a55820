"""The Kafka broker loses its data under running services (`duhub serve ingest`, one aggregate
worker, `duhub serve query`): the topic is made again, empty, and its offsets start over below
the read model's positions. Ingest and the worker stop, exit 2, naming the partition, where the
read model stands and where the log ends; no event is answered ACCEPTED that the figures will
never count. `duhub up` on the same log does as well.

Before 2026-12-05 the check ran at start only: ingest answered ACCEPTED from the new topic's
offset 0 (and `duhub up` too), the worker read the new records, took them for applied ones
(its position lay past them) and said nothing, the figures never showed them, and the lag
read 0."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import grpc
import pytest

from duhub.log.kafka import KafkaSpec
from duhub.v1 import ingest_pb2 as ipb
from tests.e2e.hubproc import DuhubProcess, HubProcess, serve, stat_values
from tests.infra import ORIGIN_KEY, fresh_database, kafka_bootstrap, postgres_url
from tests.integration.chaos import PrivateKafka, private_kafka, remake_topic
from tests.integration.scale import accountability, ends_of, publish, wait_applied

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

COUNTY = "420502"
PERSONS = ("--metric", "accountability_persons")
BEFORE = 30  # events applied before the broker loses them
AFTER = 10  # published after: their offsets lie below the read model's position


def _exits(proc: DuhubProcess, timeout: float) -> int | None:
    try:
        return proc.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # still running
        return None


def _lose(kafka: PrivateKafka, log_url: str, how: str) -> None:
    """The broker loses the topic: stopped, its data deleted, started again empty on the same
    port; or the topic deleted. Then made again, as any duhub process opening the log does."""
    emptied = how == "broker emptied"
    if emptied:
        kafka.reset()
        kafka.up()
    remake_topic(KafkaSpec.parse(log_url), delete=not emptied)


@pytest.mark.parametrize("how", ["broker emptied", "topic made again"])
def test_services_stop_when_the_log_loses_what_the_read_model_applied(
    tmp_path: Path, how: str
) -> None:
    postgres_url()  # skips (fails under CI) without the servers
    kafka_bootstrap()
    with private_kafka() as kafka, fresh_database() as db_url:
        log_url = f"kafka://{kafka.bootstrap}?partitions=1&key={ORIGIN_KEY}"
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        worker = serve("aggregate", *opts)
        ingest = serve("ingest", *opts)
        query = serve("query", "--db", db_url, "--data-dir", str(tmp_path))
        procs = [worker, ingest, query]
        try:
            first = publish(
                ingest.address, [accountability(COUNTY, s, 1) for s in range(1, BEFORE + 1)]
            )
            assert all(r.result == ipb.RESULT_ACCEPTED for r in first)
            wait_applied(query.address, ends_of(first))
            held = ends_of(first)[0]  # the reference ingest loaded, and these
            assert stat_values(query.address, *PERSONS) == {"accountability_persons": BEFORE}

            _lose(kafka, log_url, how)

            later = [accountability(COUNTY, s, 1) for s in range(BEFORE + 1, BEFORE + AFTER + 1)]
            try:
                answers = publish(ingest.address, later, timeout=60)
            except grpc.RpcError as e:  # refused: nothing acknowledged
                answers = []
                print(f"publish after the loss: {e.code().name}: {e.details()}")
            accepted = [r for r in answers if r.result == ipb.RESULT_ACCEPTED]
            print(f"accepted after the loss: {[(r.partition, r.offset) for r in accepted]}")

            worker_code = _exits(worker, 60)
            ingest_code = _exits(ingest, 30)
            for name, proc in (("worker", worker), ("ingest", ingest)):
                lines = [ln for ln in proc.output if "not found in cluster metadata" not in ln]
                print(f"--- {name} (exit {proc.proc.poll()}):\n" + "".join(lines[-25:]))
            print(f"figures: {stat_values(query.address, *PERSONS)}")
            # Nothing acknowledged is lost: an ACCEPTED event the figures never count is.
            assert accepted == [], "ACCEPTED, and never counted"
            assert worker_code == 2, f"the worker went on ({worker_code})"
            assert ingest_code == 2, f"ingest went on ({ingest_code})"
            for out in (worker.output, ingest.output):
                text = "".join(out)
                assert re.search(rf"partition 0 at {held}, the log ends at \d+", text), text[-3000:]
        finally:
            for p in procs:
                p.stop()


def test_duhub_up_stops_when_the_log_loses_what_the_read_model_applied(tmp_path: Path) -> None:
    postgres_url()
    kafka_bootstrap()
    with private_kafka() as kafka:
        log_url = f"kafka://{kafka.bootstrap}?partitions=1&key={ORIGIN_KEY}"
        db = f"sqlite:///{tmp_path / 'readmodel.db'}"
        hub = HubProcess(tmp_path / "data", "--log", log_url, "--db", db)
        try:
            first = publish(
                hub.address, [accountability(COUNTY, s, 1) for s in range(1, BEFORE + 1)]
            )
            assert all(r.result == ipb.RESULT_ACCEPTED for r in first)
            wait_applied(hub.address, ends_of(first))
            held = ends_of(first)[0]

            _lose(kafka, log_url, "broker emptied")

            later = [accountability(COUNTY, s, 1) for s in range(BEFORE + 1, BEFORE + AFTER + 1)]
            try:
                answers = publish(hub.address, later, timeout=30)
            except grpc.RpcError:
                answers = []
            assert [r for r in answers if r.result == ipb.RESULT_ACCEPTED] == []
            code = _exits(hub, 60)
            text = "".join(hub.output)
            assert code == 2, text[-3000:]
            assert re.search(rf"duhub up: --log lost records .*partition 0 at {held}, ", text)
        finally:
            hub.stop()
