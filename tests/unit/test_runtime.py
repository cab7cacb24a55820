"""Process-wide settings: glibc's malloc arenas capped for the long-running services."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# Threads that allocate, then glibc's own report of its arenas (one <heap> each).
PROBE = """
import ctypes, ctypes.util, sys, tempfile, threading
from duhub.runtime import limit_malloc_arenas
took = limit_malloc_arenas() if sys.argv[1] == "capped" else False
together = threading.Barrier(8)  # all alive at once: none inherits another's arena
def churn():
    together.wait()
    for _ in range(2000):
        [bytearray(512) for _ in range(50)]
threads = [threading.Thread(target=churn) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as f:
    fp = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(fp)); libc.fclose(ctypes.c_void_p(fp))
    print(took, open(f.name).read().count("<heap nr="))
"""


def arenas(mode: str, **env: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={k: v for k, v in {**os.environ, **env}.items() if v},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_the_services_use_at_most_two_malloc_arenas() -> None:
    took, capped = arenas("capped", MALLOC_ARENA_MAX="")
    assert took == "True" and capped <= 2
    # Without the cap, the same threads spread over more arenas (so the check can fail).
    assert arenas("default", MALLOC_ARENA_MAX="")[1] > 2


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_an_arena_count_set_by_hand_is_left_alone() -> None:
    took, n = arenas("capped", MALLOC_ARENA_MAX="4")
    assert took == "False" and n <= 4
