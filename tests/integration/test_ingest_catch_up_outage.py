"""`duhub serve ingest` waits, before it opens, for the read model to apply all the log held
when it started. PostgreSQL restarting during that wait must not leave it closed for good:
once the database is back and the aggregate workers have caught up, ingest opens (health
SERVING), as the README's Faults section says every service does on its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.hubproc import serve
from tests.infra import kafka_log_url, postgres_url
from tests.integration.chaos import health, private_postgres, wait_health

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]

INGEST = "duhub.v1.IngestService"


def test_ingest_opens_after_postgres_restarts_while_it_catches_up(tmp_path: Path) -> None:
    postgres_url()
    log_url = kafka_log_url(partitions=2)
    with private_postgres() as pg:
        opts = ("--log", log_url, "--db", pg.url, "--data-dir", str(tmp_path))
        # An ingest alone loads the reference hierarchy into the log; no worker applies it.
        first = serve("ingest", *opts, "--http", "off")
        try:
            wait_health(first.address, INGEST, "SERVING", timeout=60)
        finally:
            first.stop()
        ingest = serve("ingest", *opts, "--http", "off")
        worker = None
        try:
            time.sleep(2.0)
            assert health(ingest.address, INGEST) == "NOT_SERVING"  # 1,160 records to apply
            pg.down()
            time.sleep(3.0)
            pg.up()
            worker = serve("aggregate", *opts)
            try:
                wait_health(ingest.address, INGEST, "SERVING", timeout=60)
            except AssertionError as e:  # what each process said, to tell whose fault it is
                said = {"ingest": ingest.output, "worker": worker.output}
                raise AssertionError(
                    f"{e}\n" + "".join(f"--- {k}:\n{''.join(v[-80:])}" for k, v in said.items())
                ) from None
        finally:
            ingest.stop()
            if worker is not None:
                worker.stop()
