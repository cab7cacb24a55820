"""An aggregate worker's stdout holds plain lines only, from start to a clean stop: logs
collected from it (Kubernetes, journald) are not garbled by terminal control bytes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.hubproc import DUHUB
from tests.infra import fresh_database, kafka_log_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_a_stopped_worker_wrote_no_terminal_escape_to_stdout(tmp_path: Path) -> None:
    # Before, Faust's progress spinner ended with "\b\x1b[?25h" (backspace, show the cursor)
    # on stdout, even though no terminal was there to draw it on.
    with fresh_database() as db_url:
        err = tmp_path / "stderr"
        with err.open("wb") as stderr:
            proc = subprocess.Popen(
                [DUHUB, "serve", "aggregate", "--log", kafka_log_url(2), "--db", db_url]
                + ["--data-dir", str(tmp_path / "d"), "--metrics", "off"],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                deadline = time.monotonic() + 90
                # Started whole: it reads its partitions (Faust's startup has finished).
                while not re.search(rb"reading partitions \[0, 1\]", err.read_bytes()):
                    assert proc.poll() is None, err.read_text()[-3000:]
                    assert time.monotonic() < deadline, err.read_text()[-3000:]
                    time.sleep(0.2)
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=90)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert proc.returncode == 0, err.read_text()[-3000:]
    assert out.startswith(b"duhub aggregate: log kafka://"), out
    assert b"\x1b" not in out and b"\b" not in out, out
