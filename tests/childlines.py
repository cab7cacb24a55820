"""Read a child process's stdout with a deadline: a child that hangs before it writes fails the
test, with what it said on stderr, instead of hanging it. Its stderr goes to a file (`stderr`
below), not to a pipe: one nobody reads stops the child once 64 KB fill it."""

from __future__ import annotations

import subprocess
import threading
from typing import IO


def said(stderr: IO[str] | None) -> str:
    """Return all the child wrote to the file its stderr goes to ("" for none); failures show
    its last 3,000 characters."""
    if stderr is None:
        return ""
    stderr.flush()
    stderr.seek(0)
    return stderr.read()


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
    raise AssertionError(
        f"no line from {proc.args!r} in {timeout} s; killed it. stderr:\n{said(stderr)[-3000:]}"
    )


def finish(
    proc: subprocess.Popen[str], timeout: float, stderr: IO[str] | None = None
) -> tuple[str, str]:
    """Wait for `proc` to end; return the rest of its stdout and all its stderr (from the file
    `stderr`). Past `timeout` seconds, kill it and fail, showing its stderr."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=30)
        raise AssertionError(
            f"{proc.args!r} did not end in {timeout} s; killed it. stderr:\n{said(stderr)[-3000:]}"
        ) from None
    return out or "", said(stderr)
