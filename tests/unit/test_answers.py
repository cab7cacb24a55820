"""The query service's answer cache: reused only while the applied positions stay put."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, update

from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.v1 import query_pb2 as qpb
from services.query.answers import MAX_BYTES, AnswerCache


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = open_engine(f"sqlite:///{tmp_path / 'rm.db'}", sqlite_pool_size=2, sqlite_cache_mib=1)
    with e.begin() as conn:
        conn.execute(insert(s.log_positions), [{"partition": 0, "next_offset": 5}])
    yield e
    e.dispose()


def commit(engine: Engine, offset: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(s.log_positions).values(next_offset=offset))


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_an_answer_is_reused_until_the_positions_move(engine: Engine) -> None:
    cache, compute = AnswerCache(engine), Counter()
    assert [cache.answer(b"q", compute) for _ in range(3)] == [1, 1, 1]
    assert cache.answer(b"other", compute) == 2
    commit(engine, 6)
    assert cache.answer(b"q", compute) == 3  # a commit: computed again, at once
    assert cache.answer(b"q", compute) == 3
    assert (cache.hits, cache.misses) == (3, 3)


def test_size_zero_computes_every_answer(engine: Engine) -> None:
    cache, compute = AnswerCache(engine, 0), Counter()
    assert [cache.answer(b"q", compute) for _ in range(3)] == [1, 2, 3]


def test_the_least_recently_used_answer_goes_first(engine: Engine) -> None:
    cache, compute = AnswerCache(engine, 2), Counter()
    cache.answer(b"a", compute)
    cache.answer(b"b", compute)
    cache.answer(b"a", compute)  # a used last: b goes
    cache.answer(b"c", compute)
    assert cache.answer(b"a", compute) == 1
    assert cache.answer(b"b", compute) == 4


def test_a_failed_answer_is_not_kept(engine: Engine) -> None:
    cache = AnswerCache(engine)

    def fail() -> int:
        raise LookupError("unknown")

    with pytest.raises(LookupError):
        cache.answer(b"q", fail)
    assert cache.answer(b"q", lambda: 7) == 7


def big_answer(n: int) -> qpb.Coverage:
    """A coverage answer of about 1 MB: a campaign whose 80,000 targets are all uncovered."""
    return qpb.Coverage(
        campaign_id=f"c{n}",
        groups=[qpb.GroupCoverage(uncovered_unit_ids=[f"u{n}-{i:07d}" for i in range(80_000)])],
    )


def test_answers_are_kept_up_to_a_byte_bound_whatever_their_count(engine: Engine) -> None:
    # A GetStatistics by day over 5,000 days is ~2.8 MB: 512 of them, differing only in
    # `from` by a second each, took a hub from 80 MB to 4.9 GB of memory.
    cache = AnswerCache(engine, 512)
    size = big_answer(0).ByteSize()
    assert size > 900_000
    for n in range(100):
        cache.answer(b"%d" % n, lambda n=n: big_answer(n))
    kept = [n for n in range(100) if cache.answer(b"%d" % n, lambda: qpb.Coverage()).campaign_id]
    assert kept, "the latest answers are kept"
    assert len(kept) * size <= MAX_BYTES
    assert kept == list(range(100 - len(kept), 100))  # the least recently used went


def test_an_answer_larger_than_the_bound_is_not_kept(engine: Engine) -> None:
    cache, compute = AnswerCache(engine, 512, max_bytes=1000), Counter()
    assert cache.answer(b"big", lambda: big_answer(compute())).campaign_id == "c1"
    assert cache.answer(b"big", lambda: big_answer(compute())).campaign_id == "c2"
