"""The query service's answer cache: reused only while the applied positions stay put."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, update

from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from services.query.answers import AnswerCache


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
