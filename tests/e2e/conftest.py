from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.hubproc import HubProcess
from tests.infra import fresh_database, kafka_log_url


@pytest.fixture(params=["embedded-sqlite", "kafka-postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    """Extra `duhub up` options for each pair of log and read model the suite runs over."""
    if request.param == "embedded-sqlite":
        yield ()
        return
    log_url = kafka_log_url()
    with fresh_database() as db_url:
        yield ("--log", log_url, "--db", db_url)


@pytest.fixture
def hub(tmp_path: Path, backend: tuple[str, ...]) -> Iterator[HubProcess]:
    proc = HubProcess(tmp_path / "data", *backend)
    yield proc
    proc.stop()


@pytest.fixture(autouse=True, scope="session")
def _outbox_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`duhub publish` keeps an outbox per target under $XDG_CACHE_HOME/duhub: the tests' go
    to a temporary directory, not the user's cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
