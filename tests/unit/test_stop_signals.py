"""A server's wait for SIGINT/SIGTERM (duhub.cli.stopsignal): no signal is ever lost.

Each case runs in a process of its own: signal handlers are process-wide."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.childlines import finish, first_line

ROOT = Path(__file__).resolve().parents[2]

# A SIGTERM at a random moment around the start of the wait, thousands of times. Before, the
# handler set a threading.Event: one run in a few thousand slept on (the signal came just
# before the wait went to sleep, or while it held the Event's lock), as `duhub serve query`
# did in CI, 30 s after the test's terminate().
RACE = """
import os, random, signal, threading
from duhub.cli.stopsignal import StopSignals
for _ in range(RUNS):
    with StopSignals() as stop:
        killer = threading.Timer(random.random() * 0.0003, os.kill, (os.getpid(), signal.SIGTERM))
        killer.start()
        stop.wait()
        killer.join()
print("stopped every time")
"""

# The kernel may hand a process's signal to any of its threads (gRPC's among them): the C
# handler then runs there, and a main thread asleep in Event.wait() was never woken.
ELSEWHERE = """
import signal, threading
from duhub.cli.stopsignal import StopSignals
with StopSignals() as stop:
    threading.Timer(0.2, lambda: signal.pthread_kill(threading.get_ident(), SIGNAL)).start()
    print("stopped" if stop.wait(timeout=20) else "slept on")
"""

# One that came before the wait (between the banner and it) is kept for it; none: a timeout.
# Once left, the signals are as before again (here the default: SIGTERM ends the process).
EARLY = """
import os, signal
from duhub.cli.stopsignal import StopSignals
with StopSignals() as stop:
    print("idle", stop.wait(timeout=0.05))
    os.kill(os.getpid(), signal.SIGTERM)
    print("early", stop.wait(timeout=20))
print("restored", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
os.kill(os.getpid(), signal.SIGTERM)
print("not reached")
"""

# noted() names the stop that came, for a caller handing it on (Faust's loop), and keeps it.
NOTED = """
import os, signal
from duhub.cli.stopsignal import StopSignals
with StopSignals() as stop:
    print("none", stop.noted())
    os.kill(os.getpid(), signal.SIGINT)
    print("came", stop.noted().name, stop.noted().name, stop.wait(timeout=0))
"""


def run(script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_signal_at_any_moment_ends_the_wait() -> None:
    done = run(RACE.replace("RUNS", "3000"))
    assert (done.returncode, done.stdout) == (0, "stopped every time\n"), done.stderr


def test_a_signal_handled_in_another_thread_ends_the_wait() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        done = run(ELSEWHERE.replace("SIGNAL", str(int(sig))))
        assert (done.returncode, done.stdout) == (0, "stopped\n"), done.stderr


def test_a_signal_before_the_wait_is_kept_and_the_handlers_restored_after() -> None:
    done = run(EARLY)
    assert done.stdout == "idle False\nearly True\nrestored True\n", done.stderr
    assert done.returncode == -signal.SIGTERM


def test_the_stop_that_came_is_named_and_kept() -> None:
    done = run(NOTED)
    assert (done.returncode, done.stdout) == (0, "none None\ncame SIGINT SIGINT True\n"), (
        done.stderr
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_aggregate_stops_cleanly_on_a_signal_right_after_its_banner(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # Before, `duhub serve aggregate` (embedded log, SQLite) printed its banner before it
    # caught the signals: whoever read it and sent a TERM ended it by the default action
    # (exit -15; an INT, a KeyboardInterrupt traceback).
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "duhub.cli.main", "serve", "aggregate"]
            + ["--data-dir", str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        line = first_line(proc, 60, stderr)
        proc.send_signal(signum)
        _, err = finish(proc, 60, stderr)
    assert line.startswith("duhub aggregate: log "), line + err
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
