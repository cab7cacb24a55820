"""`duhub publish FILE` keeps what it read of the file on disk, not in memory, until the
outbox stores it all in one transaction: the memory it takes does not grow with the file."""

from __future__ import annotations

import json
import socket
import tracemalloc
from pathlib import Path

import pytest

from duhub.cli.publish import publish
from duhub.node import Outbox
from duhub.node.outbox import Unreachable


def closed_port() -> str:
    """An address where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def stored_peak(tmp_path: Path, lines: int) -> int:
    """Store a file of `lines` events through publish (no hub answers); return the peak of
    Python's allocations meanwhile, in bytes."""
    path = tmp_path / f"{lines}.jsonl"
    with path.open("w") as f:
        for i in range(1, lines + 1):
            event = {
                "eventId": f"mem-{lines}-{i}",
                "source": "420581",
                "seq": str(i),
                "occurredAt": "2022-11-03T10:00:00Z",
                "supervisionVisit": {"unitId": "420581101", "area": "vaccination"},
            }
            f.write(json.dumps(event) + "\n")
    with Outbox(tmp_path / f"{lines}.db") as box:
        tracemalloc.start()
        try:
            with pytest.raises(Unreachable):
                publish(str(path), closed_port(), box, retry_for=0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert box.counts()["pending"] == lines  # all of it stored
    return peak


def test_the_memory_publish_takes_does_not_grow_with_the_file(tmp_path: Path) -> None:
    # Before, every event of the file was held serialized (and its id in a dict) until the
    # outbox stored them: about 150 bytes a line, 1.5 GB for 10M lines. 8 times the lines
    # took about 8 times the memory; now the same.
    small, large = stored_peak(tmp_path, 1000), stored_peak(tmp_path, 8000)
    assert large < small * 1.5, (small, large)
