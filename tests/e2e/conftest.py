from __future__ import annotations

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
