"""An aggregate worker stopped (SIGTERM) while the Kafka broker is gone: it cannot leave the
group, and gives up trying within LEAVE_WAIT_S, exit 0. Before 2026-12-05 Faust waited 60 s
for its consumer, past the 30 s compose and Kubernetes give a container before SIGKILL."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from services.aggregate.faust_app import LEAVE_WAIT_S
from tests.e2e.hubproc import serve
from tests.infra import ORIGIN_KEY, fresh_database, kafka_bootstrap, postgres_url
from tests.integration.chaos import private_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_a_worker_stops_in_time_with_the_broker_gone(tmp_path: Path) -> None:
    postgres_url()  # skips (fails under CI) without the servers
    kafka_bootstrap()
    with private_kafka() as kafka, fresh_database() as db_url:
        log_url = f"kafka://{kafka.bootstrap}?partitions=2&key={ORIGIN_KEY}"
        worker = serve("aggregate", "--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        try:
            worker.find(re.compile(r"reading partitions \[0, 1\]"), timeout=60)
            kafka.down()
            t0 = time.monotonic()
            worker.proc.send_signal(signal.SIGTERM)
            code = worker.proc.wait(timeout=120)
            took = time.monotonic() - t0
            assert code == 0, "".join(worker.output)[-3000:]
            assert took < LEAVE_WAIT_S + 10, f"stopped after {took:.0f} s"
        finally:
            worker.stop()
