"""A stopped worker's process ends even when a thread that is not a daemon will not (Faust's
consumer thread stuck joining the group kept the process alive until SIGKILL)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import logging, sys, threading, time
    from services.aggregate.stuck_threads import exit_past_stuck

    logging.basicConfig(level=logging.INFO)
    forever = threading.Event()
    threading.Thread(target=forever.wait, name="consumer-thread").start()  # not a daemon
    if sys.argv[1] == "ends":
        forever.set()  # it ends within the grace
    exit_past_stuck(3, grace_s=0.5)
    print("returned", flush=True)
    """
)


def run(case: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, case], capture_output=True, text=True, timeout=30
    )


def test_a_thread_that_will_not_end_does_not_keep_the_process() -> None:
    done = run("stuck")
    assert done.returncode == 3, done.stderr
    assert "returned" not in done.stdout
    assert "consumer-thread did not end" in done.stderr


def test_threads_that_end_within_the_grace_are_waited_for() -> None:
    done = run("ends")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "returned"
    assert "did not end" not in done.stderr
