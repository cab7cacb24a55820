"""Helpers of the fault tests: county nodes that publish through their outboxes under a steady
load, private Kafka and PostgreSQL instances to restart, health probes, and the final checks
(every accepted event counted exactly once; a replay from scratch gives the same digest)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaAdminClient
from sqlalchemy import create_engine, text

from duhub.log.kafka import KafkaSpec, ensure_topics
from duhub.node import Backoff, Outbox
from duhub.node.outbox import CHANNEL_OPTIONS
from duhub.v1 import ingest_pb2 as ipb
from tests.e2e.hubproc import DUHUB, duhub_json
from tests.integration.scale import accountability

ROOT = Path(__file__).resolve().parents[2]
# One run directory for the private broker and database of the restart tests: the Kafka jars
# copied there once are reused; the data is reset by every test.
FAULT_RUN_DIR = ROOT / ".run" / "faults"


def free_port() -> int:
    """A free port below the ephemeral range: a server restarted on it will not find it taken
    by some client's outgoing connection meanwhile."""
    rng = random.Random()
    while True:
        port = rng.randrange(30000, 32700)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def persons(seq: int) -> int:
    return seq % 5 + 1


class CountyNode(threading.Thread):
    """A county system: adds `chunk` events to its outbox every `pause` seconds and forwards
    them to ingest, retrying through every outage; stop() then drains what is left."""

    def __init__(
        self, county: str, target: str, outbox: Path, chunk: int = 10, pause: float = 0.2
    ) -> None:
        super().__init__(name=f"node-{county}", daemon=True)
        self.county = county
        self.target = target
        self.path = outbox
        self.chunk = chunk
        self.pause = pause
        self.generated = 0
        self.expected = 0
        self.accepted: set[str] = set()
        self.duplicates = 0
        self.retries = 0
        self.errors: list[str] = []  # answers neither retried by the outbox nor expected
        self.counts: dict[str, int] = {}
        self._generating = threading.Event()
        self._generating.set()
        self._abort = threading.Event()

    def _on_result(self, row, r: ipb.EventResult) -> None:  # type: ignore[no-untyped-def]
        if r.result == ipb.RESULT_ACCEPTED:
            self.accepted.add(r.event_id)
        elif r.result == ipb.RESULT_DUPLICATE:
            self.duplicates += 1
        else:
            self.errors.append(f"rejected {r.event_id}: {r.reason}")

    def _forward(self, box: Outbox, channel: grpc.Channel, stop: threading.Event) -> None:
        try:
            report = box.forward(
                channel,
                batch=200,
                timeout=5.0,
                backoff=Backoff(base=0.05, cap=1.0),
                stop=stop,
                on_result=self._on_result,
            )
            self.retries += report.retries
        except grpc.RpcError as e:  # not retried by the outbox: note it, carry on
            self.errors.append(f"{e.code().name}: {e.details()}")  # type: ignore[attr-defined]
            stop.wait(0.5)

    def run(self) -> None:
        channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        with Outbox(self.path) as box:
            while self._generating.is_set():
                start = self.generated + 1
                events = [
                    accountability(self.county, s, persons(s))
                    for s in range(start, start + self.chunk)
                ]
                box.add(events)
                self.generated += self.chunk
                self.expected += sum(persons(s) for s in range(start, start + self.chunk))
                self._forward(box, channel, self._abort)
                time.sleep(self.pause)
            while not self._abort.is_set() and box.counts()["pending"]:
                self._forward(box, channel, self._abort)
            self.counts = box.counts()
        channel.close()

    def stop(self) -> None:
        self._generating.clear()

    def abort(self) -> None:
        self._abort.set()


def start_nodes(counties: list[str], target: str, where: Path, **kw: float) -> list[CountyNode]:
    nodes = [CountyNode(c, target, where / f"outbox-{c}.db", **kw) for c in counties]  # type: ignore[arg-type]
    for n in nodes:
        n.start()
    return nodes


def drain(nodes: list[CountyNode], timeout: float = 90) -> None:
    """Stop generating, and wait until every node's outbox is empty (or fail)."""
    for n in nodes:
        n.stop()
    deadline = time.monotonic() + timeout
    for n in nodes:
        n.join(max(0.1, deadline - time.monotonic()))
    stuck = [n.county for n in nodes if n.is_alive()]
    for n in nodes:
        n.abort()
    assert not stuck, f"outboxes not drained in {timeout} s: {stuck}"


def health(address: str, service: str = "") -> str:
    """Return the health status name of a service, or UNREACHABLE."""
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
    except grpc.RpcError:
        return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def wait_health(address: str, service: str, want: str, timeout: float = 30) -> float:
    """Wait until the service reports `want`; return how long it took."""
    t0 = time.monotonic()
    while True:
        got = health(address, service)
        if got == want:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"{service or 'server'} at {address}: {got}"
        time.sleep(0.25)


def wait_all_applied(query: str, ingest_log: str, timeout: float = 120) -> None:
    """Wait until the read model applied everything the log holds now."""
    from duhub.bootstrap import open_log

    log_ = open_log(ingest_log)
    try:
        ends = log_.end_offsets()
    finally:
        log_.close()
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = duhub_json(query, "query", "stats", "--metric", "visits")  # query answers
            assert reply is not None
            progress = _progress(query)
        except (AssertionError, grpc.RpcError):
            progress = {}
        if all(progress.get(p, 0) >= o for p, o in ends.items()):
            return
        assert time.monotonic() < deadline, f"not applied in time: {progress} < {ends}"
        time.sleep(0.5)


def _progress(query: str) -> dict[int, int]:
    from duhub.v1 import query_pb2 as qpb
    from duhub.v1 import query_pb2_grpc

    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(query))
    reply = stub.GetProgress(qpb.GetProgressRequest(), timeout=10)
    return {p.partition: p.applied for p in reply.partitions}


def check_exactly_once(nodes: list[CountyNode], db_url: str, query: str) -> None:
    """Every event of every node is answered and counted exactly once; figures match."""
    for n in nodes:
        assert n.errors == [], f"{n.county}: {n.errors[:5]}"
        assert n.counts["pending"] == 0 and n.counts["rejected"] == 0, n.counts
        assert n.counts["accepted"] + n.counts["duplicate"] == n.generated
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT event_id, count(*) FROM facts "
                    "WHERE metric = 'accountability_persons' GROUP BY event_id"
                )
            ).all()
    finally:
        engine.dispose()
    counted = Counter({event_id: int(n) for event_id, n in rows})
    twice = [e for e, n in counted.items() if n > 1]
    assert not twice, f"counted twice: {twice[:10]}"
    for n in nodes:
        ids = {f"{n.county}-{s}" for s in range(1, n.generated + 1)}
        missing = sorted(ids - set(counted))
        assert not missing, f"{n.county}: {len(missing)} events not counted: {missing[:10]}"
        assert n.accepted <= ids
    reply = duhub_json(
        query, "query", "stats", "--metric", "accountability_persons", "--group-by", "unit"
    )
    got = {r["key"]: int(r["values"]["accountability_persons"]) for r in reply["rows"]}
    assert {n.county: got.get(n.county) for n in nodes} == {n.county: n.expected for n in nodes}


def summary(nodes: list[CountyNode]) -> str:
    sent = sum(n.generated for n in nodes)
    retries = sum(n.retries for n in nodes)
    dup = sum(n.duplicates for n in nodes)
    return f"{sent} events sent, {retries} publish calls retried, {dup} answered duplicate"


def replay_equal(log_url: str, db_url: str, into_url: str, data_dir: Path) -> str:
    """Run `duhub replay` into a fresh database; assert it exits 0 and says equal."""
    done = subprocess.run(
        [DUHUB, "replay", "--log", log_url, "--db", db_url, "--into", into_url]
        + ["--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equal: the live figures are exactly what the log gives" in done.stdout, done.stdout
    return done.stdout


def seeded() -> random.Random:
    seed = int(os.environ.get("DUHUB_FAULT_SEED") or time.time())
    print(f"fault schedule seed: {seed} (DUHUB_FAULT_SEED={seed} repeats it)")
    return random.Random(seed)


def _script(name: str, action: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / name), action],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{name} {action}: {done.stdout}{done.stderr}"


class PrivateKafka:
    """A broker of its own (deploy/kafka/kafka.sh on other ports and run dir), to restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.env = {
            "DUHUB_RUN_DIR": str(FAULT_RUN_DIR),
            "DUHUB_KAFKA_PORT": str(self.port),
            "DUHUB_KAFKA_CONTROLLER_PORT": str(free_port()),
        }
        self.bootstrap = f"127.0.0.1:{self.port}"

    def up(self) -> None:
        _script("kafka/kafka.sh", "up", self.env)

    def down(self) -> None:
        _script("kafka/kafka.sh", "down", self.env)

    def reset(self) -> None:
        _script("kafka/kafka.sh", "reset", self.env)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (deploy/postgres/pg.sh on another port), to restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.env = {"DUHUB_RUN_DIR": str(FAULT_RUN_DIR), "DUHUB_PG_PORT": str(self.port)}
        self.url = f"postgresql://duhub:duhub@127.0.0.1:{self.port}/duhub"

    def up(self) -> None:
        _script("postgres/pg.sh", "up", self.env)

    def down(self) -> None:
        _script("postgres/pg.sh", "down", self.env)

    def reset(self) -> None:
        _script("postgres/pg.sh", "reset", self.env)


@contextmanager
def private_kafka() -> Iterator[PrivateKafka]:
    kafka = PrivateKafka()
    kafka.reset()
    kafka.up()
    try:
        yield kafka
    finally:
        kafka.reset()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.reset()
    pg.up()
    try:
        yield pg
    finally:
        pg.reset()


def remake_topic(spec: KafkaSpec, *, delete: bool = True) -> None:
    """Delete the topic of `spec` (unless `delete` is False: a broker emptied has none) and
    make it again, empty, as any duhub process opening the log does."""
    admin = KafkaAdminClient(bootstrap_servers=spec.bootstrap)
    try:
        old = None
        if delete:
            old = admin.describe_topics([spec.topic])[0]["topic_id"]
            admin.delete_topics([spec.topic])
            deadline = time.monotonic() + 60
            while spec.topic in admin.list_topics():
                assert time.monotonic() < deadline, "the topic was not deleted"
                time.sleep(0.2)
        # Until the broker lists a new topic with all its partitions led: while a deletion is
        # still under way, create_topics says the topic exists and ensure_topics takes it at
        # its word, and the old topic may still be listed for a moment after the new is made.
        deadline = time.monotonic() + 60
        while True:
            ensure_topics(spec)
            found = admin.describe_topics([spec.topic])[0]
            parts = found["partitions"]
            if (
                found["error_code"] == 0
                and (old is None or found["topic_id"] != old)
                and len(parts) == spec.partitions
                and all(p["leader_id"] >= 0 for p in parts)
            ):
                return
            assert time.monotonic() < deadline, f"topic {spec.topic} was not made again: {found}"
            time.sleep(0.5)
    finally:
        admin.close()
