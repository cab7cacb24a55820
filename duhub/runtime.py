"""Process-wide settings for the long-running services."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Folding a batch makes tens of thousands of short-lived objects; with CPython's default
# threshold (700) the collector ran every few events and walked the whole heap often
# (measured: fold 14 -> 7 µs/event, row building 24 -> 14 µs/event without it). 150,000 rather
# than 50,000: freshness at 5,000 events/s, p99 over 7 runs each, median 0.58 s against 0.83 s
# (by measure); replay the same; 10,000 was worse.
GEN0_THRESHOLD = 150_000


# glibc's malloc gives each thread that allocates an arena of its own (up to 8 per core), and
# freed memory stays in them: the aggregate worker's threads (the fold off the event loop, the
# write behind, Kafka's clients) kept ~190 of its ~390 MB RSS in 64 MB arena maps late in a
# 10M backlog. Two arenas: peak RSS through a 200k backlog 293 -> 267 MB (median of 3 runs
# each, alternating), rate unchanged (3,257 against 3,361 records/s).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas (before threads start); return whether it took. Elsewhere
    (musl, macOS), or when MALLOC_ARENA_MAX is set by hand, nothing changes."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, MALLOC_ARENAS))


def tune_gc() -> None:
    """Collect less often, and never walk what startup loaded (modules, reference data)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


@contextmanager
def collect_between_batches() -> Iterator[Callable[[], None]]:
    """Turn the cyclic collector off for a run of batches; the function yielded collects, at
    a batch's end, once as much was allocated as the collector's own first threshold, and
    then the whole heap.

    A batch keeps its objects alive until it ends (decoded events, rows, the rollup sums), so
    the collections in its middle (one per GEN0_THRESHOLD allocations, several a 20,000-record
    batch) walked them all and freed next to nothing (30-40 objects of a batch are cyclic);
    at its end they are gone and the whole heap, which `tune_gc` froze the start of, is a few
    tens of thousands of objects (~20 ms a collection). By measure (the 200k log's first
    batches folded and written in one process): 14-15 us a record spent collecting, ~2
    collecting the whole heap after every batch instead (bench/HISTORY.md, 2026-12-06).
    """
    was = gc.isenabled()
    gc.disable()

    def between() -> None:
        if gc.get_count()[0] >= GEN0_THRESHOLD:  # counts while off: allocated less freed
            gc.collect()

    try:
        yield between
    finally:
        if was:
            gc.enable()
