"""The cyclic collector off through a run of batches, and run between them (replay's fold and
its SQLite writer process): garbage cycles are still freed, and the collector is left as it
was found."""

from __future__ import annotations

import gc
import weakref

from duhub.runtime import GEN0_THRESHOLD, collect_between_batches


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_collector_off_in_a_batch_and_cycles_collected_between() -> None:
    assert gc.isenabled()
    with collect_between_batches() as between:
        assert not gc.isenabled()
        cycle = weakref.ref(_Node())
        keep = [[] for _ in range(GEN0_THRESHOLD)]  # a batch's worth of live objects
        assert cycle() is not None  # not collected in the middle of the batch
        del keep
        keep = [[] for _ in range(GEN0_THRESHOLD)]  # allocated again: counted while off
        between()
        assert cycle() is None
        del keep
    assert gc.isenabled()


def test_a_small_batch_is_not_followed_by_a_collection() -> None:
    with collect_between_batches() as between:
        gc.collect()
        cycle = weakref.ref(_Node())
        between()
        assert cycle() is not None  # fewer than a threshold's allocations: left for later
    gc.collect()
    assert cycle() is None


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with collect_between_batches():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
