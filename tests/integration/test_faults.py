"""Faults with real processes on real Kafka and PostgreSQL, the services apart, under a steady
load from county nodes publishing through their outboxes: kill -9 of ingest, of an aggregate
worker and of the query server at random points; a restart of the Kafka broker; a restart of
PostgreSQL. Afterwards every event is counted exactly once, the figures equal what was sent,
and `duhub replay` into a fresh database gives the same digest as the live read model.

The broker and database restarted are private instances (deploy/kafka/kafka.sh and
deploy/postgres/pg.sh on other ports, under .run/faults), so the shared ones other tests use
are never touched. DUHUB_FAULT_SEED repeats a run's random schedule.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.hubproc import DuhubProcess, serve
from tests.infra import ORIGIN_KEY, fresh_database, kafka_bootstrap, postgres_url, unique
from tests.integration.chaos import (
    check_exactly_once,
    drain,
    free_port,
    health,
    private_kafka,
    private_postgres,
    replay_equal,
    seeded,
    start_nodes,
    summary,
    wait_all_applied,
    wait_health,
)

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]

COUNTIES = ["420502", "420503", "420506", "420525", "420581", "420583"]
INGEST = "duhub.v1.IngestService"
QUERY = "duhub.v1.QueryService"


class Services:
    """ingest, query and aggregate workers as separate processes, on fixed ports, so that a
    killed one comes back where the nodes and the test look for it."""

    def __init__(self, log_url: str, db_url: str, data: Path, workers: int = 2) -> None:
        self.opts = ("--log", log_url, "--db", db_url, "--data-dir", str(data))
        self.ingest_at = f"127.0.0.1:{free_port()}"
        self.query_at = f"127.0.0.1:{free_port()}"
        self.workers = [self.start("aggregate") for _ in range(workers)]
        self.ingest = self.start("ingest")
        self.query = self.start("query")

    def start(self, service: str) -> DuhubProcess:
        if service == "aggregate":
            return serve("aggregate", *self.opts)
        listen = self.ingest_at if service == "ingest" else self.query_at
        return serve(service, *self.opts, "--listen", listen, "--http", "off")

    def all(self) -> list[DuhubProcess]:
        return [*self.workers, self.ingest, self.query]

    def stop(self) -> None:
        for p in self.all():
            p.stop()


def test_kill9_ingest_worker_and_query_under_load(tmp_path: Path) -> None:
    rng = seeded()
    t0 = time.monotonic()
    log_url = (
        f"kafka://{kafka_bootstrap()}?topic={unique('duhub.faults.')}&partitions=6&key={ORIGIN_KEY}"
    )
    with fresh_database() as db_url, fresh_database() as replay_url:
        svc = Services(log_url, db_url, tmp_path)
        try:
            wait_health(svc.ingest_at, INGEST, "SERVING", timeout=60)
            # Batches of 20: a kill often lands while a publish call is in flight.
            nodes = start_nodes(COUNTIES, svc.ingest_at, tmp_path, chunk=20)
            kills: list[str] = []
            for what in rng.sample(["ingest", "aggregate", "query", "ingest", "ingest"], 5):
                time.sleep(rng.uniform(2.0, 6.0))  # a random point under load
                if what == "ingest":
                    svc.ingest.kill9()
                    time.sleep(rng.uniform(0.0, 2.0))
                    svc.ingest = svc.start("ingest")
                elif what == "query":
                    svc.query.kill9()
                    time.sleep(rng.uniform(0.0, 2.0))
                    svc.query = svc.start("query")
                else:
                    i = rng.randrange(len(svc.workers))
                    svc.workers[i].kill9()
                    time.sleep(rng.uniform(0.0, 2.0))
                    svc.workers[i] = svc.start("aggregate")
                kills.append(what)
            time.sleep(3.0)
            drain(nodes)
            wait_all_applied(svc.query_at, log_url)
            check_exactly_once(nodes, db_url, svc.query_at)
            assert health(svc.ingest_at, INGEST) == "SERVING"
            assert health(svc.query_at, QUERY) == "SERVING"
            replay_equal(log_url, db_url, replay_url, tmp_path)
            print(f"killed {kills}: {summary(nodes)}")
        finally:
            svc.stop()
    assert time.monotonic() - t0 < 180


def test_kafka_broker_restart_under_load(tmp_path: Path) -> None:
    postgres_url()  # skips (fails under CI) without the servers
    kafka_bootstrap()
    t0 = time.monotonic()
    with private_kafka() as kafka, fresh_database() as db_url, fresh_database() as replay_url:
        log_url = f"kafka://{kafka.bootstrap}?topic=duhub.events.v1&partitions=4&key={ORIGIN_KEY}"
        svc = Services(log_url, db_url, tmp_path, workers=1)
        try:
            wait_health(svc.ingest_at, INGEST, "SERVING", timeout=60)
            nodes = start_nodes(COUNTIES, svc.ingest_at, tmp_path)
            time.sleep(5.0)
            kafka.down()
            down_after = wait_health(svc.ingest_at, INGEST, "NOT_SERVING", timeout=20)
            assert health(svc.query_at, QUERY) == "SERVING"  # the database is still there
            time.sleep(3.0)
            kafka.up()
            up_after = wait_health(svc.ingest_at, INGEST, "SERVING", timeout=60)
            time.sleep(5.0)
            drain(nodes)
            wait_all_applied(svc.query_at, log_url)
            check_exactly_once(nodes, db_url, svc.query_at)
            assert all(p.proc.poll() is None for p in svc.all()), "a service died"
            replay_equal(log_url, db_url, replay_url, tmp_path)
            print(f"broker restart: {summary(nodes)}; ingest NOT_SERVING {down_after:.1f} s")
            print(f"after the broker stopped, SERVING again {up_after:.1f} s after it was back")
        finally:
            svc.stop()
    assert time.monotonic() - t0 < 180


def test_postgres_restart_under_load(tmp_path: Path) -> None:
    postgres_url()
    log_url = (
        f"kafka://{kafka_bootstrap()}?topic={unique('duhub.faults.')}&partitions=4&key={ORIGIN_KEY}"
    )
    t0 = time.monotonic()
    with private_postgres() as pg, fresh_database() as replay_url:
        svc = Services(log_url, pg.url, tmp_path, workers=1)
        try:
            wait_health(svc.ingest_at, INGEST, "SERVING", timeout=60)
            nodes = start_nodes(COUNTIES, svc.ingest_at, tmp_path)
            time.sleep(5.0)
            pg.down()
            down_ingest = wait_health(svc.ingest_at, INGEST, "NOT_SERVING", timeout=20)
            down_query = wait_health(svc.query_at, QUERY, "NOT_SERVING", timeout=20)
            time.sleep(3.0)
            pg.up()
            wait_health(svc.ingest_at, INGEST, "SERVING", timeout=60)
            wait_health(svc.query_at, QUERY, "SERVING", timeout=60)
            time.sleep(5.0)
            drain(nodes)
            wait_all_applied(svc.query_at, log_url)
            check_exactly_once(nodes, pg.url, svc.query_at)
            assert all(p.proc.poll() is None for p in svc.all()), "a service died"
            replay_equal(log_url, pg.url, replay_url, tmp_path)
            print(f"PostgreSQL restart: {summary(nodes)}; NOT_SERVING after")
            print(f"{down_ingest:.1f} s (ingest), {down_query:.1f} s (query)")
        finally:
            svc.stop()
    assert time.monotonic() - t0 < 180
