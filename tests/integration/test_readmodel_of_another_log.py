"""Ingest and an aggregate worker started on a read model that stands past the end of their
Kafka topic (another topic's, or the topic made again after the broker lost its data) refuse
to start, exit 2, naming --db and --log. Before 2026-12-05 both started: ingest opened and
answered ACCEPTED, and the worker, its positions past the new records, took them for applied
("folded 0 of 0 records (30 delivered)"): none ever showed in the figures, and the lag read 0."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from duhub.readmodel.engine import open_engine
from tests.e2e.hubproc import DUHUB
from tests.infra import fresh_database, kafka_log_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.mark.parametrize("service", ["ingest", "aggregate"])
def test_a_service_refuses_a_read_model_past_the_end_of_its_log(
    tmp_path: Path, service: str
) -> None:
    with fresh_database() as db_url:
        engine = open_engine(db_url)  # the schema
        with engine.begin() as conn:  # what a read model of 959 records of another log holds
            conn.execute(
                text(
                    "INSERT INTO log_positions (partition, next_offset, layout_offset) "
                    "VALUES (0, 959, 959)"
                )
            )
        engine.dispose()
        args = ["serve", service, "--log", kafka_log_url(partitions=1), "--db", db_url]
        args += ["--data-dir", str(tmp_path), "--listen", "127.0.0.1:0"]
        try:
            done = subprocess.run([DUHUB, *args], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"duhub serve {service} started: {e.stdout!r}"[-2000:])
        assert done.returncode == 2, done.stdout + done.stderr
        assert "--db: the read model stands past the end of --log" in done.stderr
        assert "partition 0 at 959, the log ends at 0" in done.stderr
