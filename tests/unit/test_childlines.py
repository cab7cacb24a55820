"""Reading a child's output never waits without bound."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import pytest

from tests.childlines import finish, first_line


def child(code: str, stderr: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=stderr, text=True
    )


def test_a_child_quiet_past_the_deadline_is_killed_and_its_stderr_shown() -> None:
    with tempfile.TemporaryFile("w+") as err:
        proc = child("import sys, time; sys.stderr.write('stuck\\n'); time.sleep(120)", err)
        began = time.monotonic()
        with pytest.raises(AssertionError, match="(?s)in 1 s; killed it.*stuck"):
            first_line(proc, 1, err)
        assert time.monotonic() - began < 30
        assert proc.poll() is not None


def test_a_child_that_says_much_on_stderr_first_is_read() -> None:
    # More than a pipe holds: with stderr=PIPE, unread, the child would never print its line.
    with tempfile.TemporaryFile("w+") as err:
        proc = child("import sys; sys.stderr.write('x' * 200_000); print('up')", err)
        assert first_line(proc, 30, err) == "up\n"
        out, text = finish(proc, 30, err)
        assert (out, len(text)) == ("", 200_000)


def test_a_child_that_does_not_end_is_killed() -> None:
    proc = child("import time; time.sleep(120)", None)
    with pytest.raises(AssertionError, match="did not end in 1 s; killed it"):
        finish(proc, 1)
    assert proc.poll() is not None
