"""`duhub serve aggregate` on Kafka keeps its Faust worker's state under --data-dir: a data dir
not made yet is made, as `duhub up` and the other services make theirs. The deployments run
the worker so (compose, k8s: the default ./data in an empty working directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.hubproc import serve
from tests.infra import kafka_log_url

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

READY = re.compile(r"reading partitions \[0\]")  # the worker has its partition


def test_an_aggregate_worker_makes_a_data_dir_not_made_yet(tmp_path: Path) -> None:
    # Before, Faust's own mkdir of DIR/faust (without its parents) failed: a traceback, and
    # the worker stopped ("FileNotFoundError: … No such file or directory: 'DIR/faust'").
    data = tmp_path / "not" / "made" / "yet"
    db = f"sqlite:///{tmp_path / 'readmodel.db'}"
    worker = serve(
        "aggregate", "--log", kafka_log_url(partitions=1), "--db", db, "--data-dir", str(data)
    )
    try:
        worker.find(READY, timeout=60)
        assert worker.proc.poll() is None, "".join(worker.output)
        assert (data / "faust").is_dir()
    finally:
        worker.stop()
    assert "Traceback" not in "".join(worker.output)
