"""The deploy scripts asked to start a second server on other ports in the run dir of one
that runs already: they refuse, naming the ports, and leave the running one as it was.

`make pg-up PG_PORT=X` beside the shared cluster (the repo's `.run`) rewrote its duhub.conf to
port X, so it moved there at its next restart, and failed "creating role/database failed";
`make kafka-up KAFKA_PORT=X` waited 90 s for a broker that listens elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.integration.chaos import ROOT, free_port


def script(name: str, action: str, run_dir: Path, **ports: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DUHUB_RUN_DIR": str(run_dir)}
    env.update({key: str(port) for key, port in ports.items()})
    return subprocess.run(
        ["bash", str(ROOT / "deploy" / name), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def answers(url: str) -> bool:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.fixture
def shared_run_dir() -> Iterator[Path]:
    """A run dir the postgres user can reach, as the repo's .run is (under one it cannot,
    pg.sh keeps each port's cluster apart, in /var/lib/postgresql/duhub-pg-PORT)."""
    run_dir = Path(tempfile.mkdtemp(prefix="duhub-deploy-", dir="/tmp"))
    run_dir.chmod(0o755)
    yield run_dir
    shutil.rmtree(run_dir, ignore_errors=True)


def test_pg_up_on_another_port_leaves_the_running_cluster_as_it_was(
    shared_run_dir: Path,
) -> None:
    first, other = free_port(), free_port()
    up = script("postgres/pg.sh", "up", shared_run_dir, DUHUB_PG_PORT=first)
    assert up.returncode == 0, up.stdout + up.stderr
    conf = shared_run_dir / "postgres" / "data" / "duhub.conf"
    try:
        done = script("postgres/pg.sh", "up", shared_run_dir, DUHUB_PG_PORT=other)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"runs on port {first}, not {other}" in done.stderr, done.stderr
        assert "DUHUB_RUN_DIR" in done.stderr  # the way to a second cluster
        assert f"port = {first}\n" in conf.read_text()  # not rewritten
        assert answers(f"postgresql://duhub:duhub@127.0.0.1:{first}/duhub")
    finally:
        script("postgres/pg.sh", "reset", shared_run_dir, DUHUB_PG_PORT=first)


def test_kafka_up_on_other_ports_says_so_instead_of_waiting(tmp_path: Path) -> None:
    first = {"DUHUB_KAFKA_PORT": free_port(), "DUHUB_KAFKA_CONTROLLER_PORT": free_port()}
    other = {"DUHUB_KAFKA_PORT": free_port(), "DUHUB_KAFKA_CONTROLLER_PORT": free_port()}
    up = script("kafka/kafka.sh", "up", tmp_path, **first)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        started = time.monotonic()
        done = script("kafka/kafka.sh", "up", tmp_path, **other)
        assert done.returncode == 1, done.stdout + done.stderr
        assert time.monotonic() - started < 30  # not the 90 s wait for readiness
        assert f"not on {other['DUHUB_KAFKA_PORT']}/" in done.stderr, done.stderr
        assert "DUHUB_RUN_DIR" in done.stderr
        again = script("kafka/kafka.sh", "up", tmp_path, **first)  # the first still answers
        assert again.returncode == 0 and "kafka ready" in again.stdout, again.stderr
    finally:
        script("kafka/kafka.sh", "reset", tmp_path, **first)
