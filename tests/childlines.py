"""Read a child process's stdout with a deadline: a child that hangs before it writes (or that
fills a pipe nobody reads) fails the test, with what it said, instead of hanging it."""

from __future__ import annotations

import subprocess
import threading
from typing import IO


def first_line(proc: subprocess.Popen[str], timeout: float, stderr: IO[str] | None = None) -> str:
    """Return the next line `proc` writes to its stdout ("" if it ended first). Past `timeout`
    seconds, kill it and fail, showing `stderr` (the file its stderr goes to), if given."""
    assert proc.stdout is not None
    stdout = proc.stdout
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if got:
        return got[0]
    proc.kill()
    proc.wait(timeout=30)
    said = ""
    if stderr is not None:
        stderr.seek(0)
        said = stderr.read()
    raise AssertionError(f"no line from {proc.args!r} in {timeout} s; killed it. stderr:\n{said}")
