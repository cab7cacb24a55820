"""An aggregate worker's metrics endpoint as a monitoring system reads it: while PostgreSQL is
down the worker's scrape says so (`duhub_dependency_up{dependency="read_model"} 0`) and says
when it is back. Before 2026-12-05 the worker served the family with no sample at all, and its
lag vanished from the scrape, so nothing on the worker said what was down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.hubproc import serve
from tests.e2e.test_observability import METRICS, scrape
from tests.infra import kafka_log_url, postgres_url
from tests.integration.chaos import private_postgres

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

LOG_UP = 'duhub_dependency_up{dependency="log"}'
DB_UP = 'duhub_dependency_up{dependency="read_model"}'


def wait_for(url: str, name: str, value: float, timeout: float = 20) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(url)
        if m.get(name) == value:
            return m
        shown = {k: v for k, v in m.items() if "dependency" in k or "lag" in k}
        assert time.monotonic() < deadline, f"{name} never {value}: {shown}"
        time.sleep(0.5)


def test_a_worker_scrape_says_the_read_model_is_down_and_back(tmp_path: Path) -> None:
    postgres_url()  # skips (fails under CI) without the servers
    with private_postgres() as pg:
        worker = serve(
            "aggregate", "--log", kafka_log_url(partitions=2), "--db", pg.url,
            "--data-dir", str(tmp_path), "--metrics", "127.0.0.1:0",
        )  # fmt: skip
        try:
            url = worker.find(METRICS).group(1)
            m = wait_for(url, DB_UP, 1)
            assert m.get(LOG_UP) == 1, m
            pg.down()
            m = wait_for(url, DB_UP, 0)
            assert m.get(LOG_UP) == 1, m  # the broker is still there
            pg.up()
            wait_for(url, DB_UP, 1, timeout=30)
            assert worker.proc.poll() is None, "".join(worker.output)[-3000:]
        finally:
            worker.stop()
