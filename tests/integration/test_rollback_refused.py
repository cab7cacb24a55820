"""An aggregate worker of this build on Kafka and PostgreSQL refuses a read model an older
build's worker moved the positions of (`layout_offset` left behind), exit 2, naming what to
do: before 2026-12-06 it took the figures the older build wrote around the year rollups and
coverage_firsts for its own and served them (tests/unit/test_readmodel_rollback.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from duhub.readmodel.engine import open_engine
from tests.e2e.hubproc import DUHUB
from tests.infra import fresh_database, kafka_log_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.mark.parametrize("service", ["aggregate", "query"])
def test_a_service_refuses_a_read_model_an_older_worker_wrote(tmp_path: Path, service: str) -> None:
    with fresh_database() as db_url:
        engine = open_engine(db_url)  # this layout, then an older worker's batch on partition 0
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO log_positions (partition, next_offset, layout_offset) "
                    "VALUES (0, 0, 0)"
                )
            )
            conn.execute(text("UPDATE log_positions SET next_offset = 40 WHERE partition = 0"))
        engine.dispose()
        args = ["serve", service, "--db", db_url, "--data-dir", str(tmp_path)]
        if service == "aggregate":
            args += ["--log", kafka_log_url(partitions=1)]
        else:
            args += ["--listen", "127.0.0.1:0", "--http", "off"]
        try:
            done = subprocess.run([DUHUB, *args], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"duhub serve {service} started: {e.stdout!r}"[-2000:])
        assert done.returncode == 2, done.stdout + done.stderr
        assert "was written by a duhub build older than its layout" in done.stderr
        assert "partition 0 at 40, left at 0 by this layout's writers" in done.stderr
        assert "Traceback" not in done.stderr
