"""The helper that runs duhub as a process never waits without bound on it."""

from __future__ import annotations

import re
import sys
import time

import pytest

from tests.e2e import hubproc
from tests.e2e.hubproc import DuhubProcess


@pytest.fixture(autouse=True)
def _python_as_duhub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hubproc, "DUHUB", sys.executable)


def test_a_command_gone_quiet_before_its_ready_line_is_killed_at_the_deadline() -> None:
    quiet = "import time; print('starting', flush=True); time.sleep(120)"
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="(?s)never said it was ready.*starting"):
        DuhubProcess(["-c", quiet], re.compile("ready"), timeout=1)
    assert time.monotonic() - began < 30


def test_a_command_that_ends_before_its_ready_line_says_so_with_its_output() -> None:
    with pytest.raises(RuntimeError, match="(?s)exited early \\(code 3\\).*broken"):
        DuhubProcess(["-c", "print('broken'); raise SystemExit(3)"], re.compile("ready"))


class _LateDrain(DuhubProcess):
    """Its drain thread falls behind, as a loaded host's may."""

    def _drain(self) -> None:
        time.sleep(1)
        super()._drain()


def test_the_last_lines_of_a_command_that_ended_are_found_though_read_late() -> None:
    proc = _LateDrain(["-c", "print('ready'); print('last')"], re.compile("ready"))
    proc.proc.wait(timeout=30)
    assert proc.find(re.compile("^last$"), timeout=0).group(0) == "last"
