"""Scaling the aggregate workers down while PostgreSQL is down: the worker left gains the
partitions of the one stopped, waits for the read model to start them from its positions, and
goes on once it is back. Before 2026-12-05 it read those positions at once, and the refused
connection stopped it, exit 70, logging "aggregate worker stops: a batch failed": no worker
was left, and none came back by itself."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.hubproc import serve
from tests.infra import kafka_log_url, postgres_url
from tests.integration.chaos import private_postgres

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

READING = re.compile(r"reading partitions \[\d")
BOTH = re.compile(r"reading partitions \[0, 1\]")


def test_a_worker_gaining_partitions_while_postgres_is_down_waits_for_it(
    tmp_path: Path,
) -> None:
    postgres_url()  # skips (fails under CI) without the servers
    with private_postgres() as pg:
        opts = ("--log", kafka_log_url(partitions=2), "--db", pg.url)
        leaving = serve("aggregate", *opts, "--data-dir", str(tmp_path / "a"))
        staying = None
        try:
            leaving.find(READING, timeout=60)
            staying = serve("aggregate", *opts, "--data-dir", str(tmp_path / "b"))
            staying.find(READING, timeout=60)  # one partition each
            pg.down()
            mark = len(staying.output)
            leaving.proc.send_signal(signal.SIGTERM)
            assert leaving.proc.wait(timeout=60) == 0, "".join(leaving.output)[-3000:]
            # The rebalance gives `staying` both partitions while the database is away.
            deadline = time.monotonic() + 30
            while not any("read model unreachable" in x for x in staying.output[mark:]):
                assert staying.proc.poll() is None, "".join(staying.output[mark:])[-3000:]
                assert time.monotonic() < deadline, "".join(staying.output[mark:])[-3000:]
                time.sleep(0.2)
            pg.up()
            staying.find(BOTH, timeout=60)
            assert staying.proc.poll() is None
            assert "CRITICAL" not in "".join(staying.output)
        finally:
            leaving.stop()
            if staying is not None:
                staying.stop()
