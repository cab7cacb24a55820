"""A worker added to a group takes a share of the partitions, up to the partition count.

Faust's assignor keeps one standby replica of every partition by default (for its tables,
which duhub has none of), and with standbys it moves no partition while every worker holds
no more than ceil(partitions / workers): a third worker on a 4-partition topic (2 + 2), or a
fifth on the default 12 (3 + 3 + 3 + 3), joined the group and read nothing, without a word,
for as long as the others ran. Found running the services apart on Kafka and PostgreSQL.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.hubproc import DuhubProcess, serve
from tests.infra import fresh_database, kafka_log_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

READING = re.compile(r"reading partitions \[\d")
LIST = re.compile(r"reading partitions \[([\d, ]*)\]")


def _reading(worker: DuhubProcess) -> set[int]:
    """The partitions the worker said last it reads."""
    said = [m.group(1) for line in list(worker.output) if (m := LIST.search(line))]
    return {int(p) for p in said[-1].split(",") if p.strip()} if said else set()


def test_a_third_worker_on_four_partitions_takes_a_share(tmp_path: Path) -> None:
    with fresh_database() as db_url:
        opts = ("--log", kafka_log_url(partitions=4), "--db", db_url)
        workers = []
        try:
            for name in ("a", "b", "c"):
                worker = serve("aggregate", *opts, "--data-dir", str(tmp_path / name))
                workers.append(worker)
                # Each in turn gains partitions of its own: two of four each, then one or two.
                worker.find(READING, timeout=90)
            # And between them they read every partition once.
            deadline = time.monotonic() + 60
            while True:
                shares = [_reading(w) for w in workers]
                whole = sorted(p for share in shares for p in share)
                if whole == [0, 1, 2, 3] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert whole == [0, 1, 2, 3], shares
            assert all(shares), shares
        finally:
            for worker in workers:
                worker.stop()
