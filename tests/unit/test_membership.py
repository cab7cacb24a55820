"""A worker the group dropped and never took back (a chaos probe, 2026-12-07: its rejoin did
not come for 7 minutes) went on applying partitions the group had given another worker, every
commit of its refused. The watchdog stops one whose commits the group has refused as a
member's for NOT_A_MEMBER_S; a commit taken, or a broker away, does not count."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from services.aggregate import faust_app
from services.aggregate.membership import CommitRefused, Membership


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_refusals_in_a_row_are_timed_from_the_first_until_a_commit_is_taken() -> None:
    clock = Clock()
    membership = Membership(clock)
    assert membership.refused_for() == 0.0
    membership.failed(CommitRefused("partitions [1]"))
    clock.now += 30
    membership.failed(CommitRefused("partitions [1, 3]"))  # from the first, not the last
    clock.now += 31
    assert membership.refused_for() == 61.0 > faust_app.NOT_A_MEMBER_S
    assert membership.reason == "partitions [1, 3]"
    membership.committed()  # rejoined: its commits are taken again
    assert membership.refused_for() == 0.0
    clock.now += 600
    assert membership.refused_for() == 0.0


def test_a_broker_away_is_not_a_members_refusal() -> None:
    clock = Clock()
    membership = Membership(clock)
    membership.failed(ConnectionError("broker away"))
    clock.now += 600
    assert membership.refused_for() == 0.0


@dataclass
class Consumer:
    """Faust's consumer as `_commit` uses it: its `_commit` answers False for a commit the
    group refused ("already rebalanced"), True for one taken."""

    takes: bool
    committed: dict[object, int] = field(default_factory=dict)
    _committed_offset: dict[object, int] = field(default_factory=dict)
    _acked: dict[object, list[int]] = field(default_factory=dict)
    _acked_index: dict[object, set[int]] = field(default_factory=dict)
    _gap: dict[object, object] = field(default_factory=dict)

    async def seek(self, tp: object, offset: int) -> None:
        pass

    async def _commit(self, offsets: dict[object, int]) -> bool:
        if self.takes:
            self.committed.update(offsets)
        return self.takes


@pytest.mark.parametrize("takes", [True, False])
def test_a_commit_the_group_refused_is_said_not_passed_over(
    takes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust's consumer answered the refusal with False, which went unread: the worker took
    the commit as made and never knew the group had dropped it."""

    class Gap:
        def chop(self, lo: int, hi: int) -> None:
            pass

    consumer = Consumer(takes)
    tp = faust_app.TP("t", 1)
    consumer._acked[tp], consumer._gap[tp] = [], Gap()
    app = type("App", (), {"consumer": consumer})()
    monkeypatch.setattr(faust_app, "_assigned", lambda app, topic: {1})
    if takes:
        asyncio.run(faust_app._commit_ours(app, "t", {1: 40}))  # type: ignore[arg-type]
        assert consumer.committed == {tp: 40} and consumer._committed_offset == {tp: 40}
    else:
        with pytest.raises(CommitRefused, match=r"partitions \[1\]"):
            asyncio.run(faust_app._commit_ours(app, "t", {1: 40}))  # type: ignore[arg-type]
        assert consumer._committed_offset == {}  # nor its bookkeeping moved
