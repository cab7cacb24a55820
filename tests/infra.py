"""The real servers tests run against: Kafka and PostgreSQL started by `make test`
(deploy/kafka, deploy/postgres). Without them a test skips, except under CI=true, where a
missing server is a failure."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from duhub.log.origin import make_key

KAFKA_ENV = "DUHUB_TEST_KAFKA"
# The origin key of every test hub on Kafka (made by the first process that needs it).
ORIGIN_KEY = os.path.join(tempfile.gettempdir(), f"duhub-test-origin-{os.getuid()}.key")
make_key(ORIGIN_KEY)
PG_ENV = "DUHUB_TEST_PG"


def _unavailable(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true (make test starts it)")
    pytest.skip(f"{what} not available; run 'make test' or set the variable")


def _reachable(host_port: str) -> bool:
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def kafka_bootstrap() -> str:
    """Return the test broker's HOST:PORT, or skip/fail."""
    value = os.environ.get(KAFKA_ENV, "")
    if not value or not _reachable(value):
        _unavailable(f"Kafka (${KAFKA_ENV}={value or 'unset'})")
    return value


def postgres_url() -> str:
    """Return the test server's admin URL (a role that may create databases), or skip/fail."""
    value = os.environ.get(PG_ENV, "")
    host_port = value.rsplit("@", 1)[-1].split("/", 1)[0] if value else ""
    if not value or not _reachable(host_port):
        _unavailable(f"PostgreSQL (${PG_ENV}={value or 'unset'})")
    return value


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def kafka_log_url(partitions: int = 4) -> str:
    """Return a log URL on a topic no other test uses."""
    return (
        f"kafka://{kafka_bootstrap()}?topic={unique('duhub.test.')}&partitions={partitions}"
        f"&key={ORIGIN_KEY}"
    )


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards."""
    admin_url = postgres_url().replace("postgresql://", "postgresql+psycopg2://", 1)
    name = unique("duhub_test_")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url().rsplit("/", 1)[0] + "/" + name
    finally:
        # FORCE may not end an autovacuum worker busy in it (owned by the superuser, which
        # the test role may not signal): wait for it to finish and try again.
        for attempt in range(20):
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except (ProgrammingError, OperationalError):
                if attempt == 19:
                    raise
                time.sleep(0.5)
        admin.dispose()


@contextmanager
def database_on(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new read model on `kind`: "sqlite" (a file in `tmp_path`) or
    "postgresql" (`fresh_database`), for tests that hold both databases to one result."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'rm.db'}"
        return
    with fresh_database() as url:
        yield url
