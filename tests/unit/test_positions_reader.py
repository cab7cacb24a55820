"""The applied positions as the query service reads them at every request: on a connection of
their own, fresh at every read, recovering from a lost connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text, update
from sqlalchemy.exc import OperationalError

from duhub.readmodel import positions
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.readmodel.positions import PositionsReader
from services.query.answers import AnswerCache
from tests.infra import database_on


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with ExitStack() as stack:
        url = stack.enter_context(database_on(request.param, tmp_path))
        e = open_engine(url, sqlite_pool_size=1, sqlite_cache_mib=1)
        with e.begin() as conn:
            conn.execute(insert(s.log_positions), [{"partition": 0, "next_offset": 5}])
        yield e
        e.dispose()


def commit(engine: Engine, offset: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(s.log_positions).values(next_offset=offset))


def kill(engine: Engine, dbapi: Any) -> None:
    """End a DB-API connection as a database restarted would: PostgreSQL's from the server's
    side (its client finds out at its next statement)."""
    if engine.dialect.name == "sqlite":
        dbapi.close()
        return
    pid = dbapi.get_backend_pid()
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_each_read_sees_every_commit_made_before_it(engine: Engine) -> None:
    reader = PositionsReader(engine)
    assert reader.read() == {0: 5}
    commit(engine, 9)
    assert reader.read() == {0: 9}
    with engine.begin() as conn:
        conn.execute(insert(s.log_positions), [{"partition": 1, "next_offset": 2}])
    assert reader.read() == {0: 9, 1: 2}


def test_no_transaction_is_left_open(engine: Engine) -> None:
    # PostgreSQL: a session idle in a transaction holds back vacuum (and, the worker's
    # engine has it so, would be ended by the server).
    reader = PositionsReader(engine)
    reader.read()
    assert reader._held is not None
    dbapi: Any = reader._held.dbapi_connection
    if engine.dialect.name == "sqlite":
        assert not dbapi.in_transaction
    else:
        assert dbapi.get_transaction_status() == 0  # psycopg2's TRANSACTION_STATUS_IDLE


def test_answers_served_from_the_cache_check_out_no_connection_each(engine: Engine) -> None:
    # The positions were read through the pool at every request: a checkout, a reset and a
    # return, ~60 us of an answer served in ~0.45 ms.
    checkouts = []
    event.listen(engine, "checkout", lambda *_: checkouts.append(1))
    cache = AnswerCache(engine)
    assert [cache.answer(b"q", lambda: 7) for _ in range(50)] == [7] * 50
    assert len(checkouts) == 1  # the connection kept for them, at the first


def test_a_lost_connection_is_replaced(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(positions, "RETRY_S", 0.0)
    reader = PositionsReader(engine)
    assert reader.read() == {0: 5}
    held = reader._held
    assert held is not None
    kill(engine, held.dbapi_connection)  # as a restarted server drops it
    commit(engine, 8)
    assert reader.read() == {0: 8}  # read through the engine this once
    assert reader.read() == {0: 8}  # and on a new connection of its own after
    assert reader._held is not None and reader._held is not held


def test_disposing_the_engine_closes_the_connection(engine: Engine) -> None:
    reader = PositionsReader(engine)
    reader.read()
    assert reader._held is not None
    dbapi = reader._held.dbapi_connection
    engine.dispose()  # a hub stopping (PostgreSQL: a database dropped after must not be in use)
    with pytest.raises(engine.dialect.loaded_dbapi.Error):
        dbapi.cursor().execute("SELECT 1")  # type: ignore[union-attr]
    assert reader.read() == {0: 5}  # and opened again if asked after


def test_a_read_finding_the_connection_in_use_does_not_wait_for_it(engine: Engine) -> None:
    # One connection at a time: a read waiting for another's (a database away, each connect
    # taking its timeout) queued every request behind it.
    reader = PositionsReader(engine)
    reader.read()
    held = reader._take()  # another read has it
    assert held is not None
    commit(engine, 7)
    checkouts = []
    event.listen(engine, "checkout", lambda *_: checkouts.append(1))
    assert reader.read() == {0: 7}  # through the engine's pool, at once
    assert len(checkouts) == 1
    reader._give_back(held, broken=False)
    assert reader.read() == {0: 7}
    assert len(checkouts) == 1  # on the kept one again


def test_a_failed_connect_is_answered_as_the_engine_would_once_not_twice(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = PositionsReader(engine)
    dbapi_error = engine.dialect.loaded_dbapi.OperationalError

    def away() -> None:
        raise dbapi_error("the database is away")

    monkeypatch.setattr(reader._pool, "connect", away)
    checkouts = []
    event.listen(engine, "checkout", lambda *_: checkouts.append(1))
    with pytest.raises(OperationalError):  # SQLAlchemy's: answered UNAVAILABLE
        reader.read()
    assert checkouts == []  # no second connect through the engine
    assert reader.read() == {0: 5}  # a moment after, through the engine


def test_an_in_memory_database_is_read_through_the_engine() -> None:
    # Another connection to sqlite:// opens another, empty database: its positions were
    # "no such table" at every read, each read then made again through the engine.
    engine = open_engine("sqlite://")
    try:
        with engine.begin() as conn:
            conn.execute(insert(s.log_positions), [{"partition": 0, "next_offset": 5}])
        connects = []
        reader = PositionsReader(engine)
        event.listen(reader._pool, "connect", lambda *_: connects.append(1))
        assert reader.read() == {0: 5}
        assert connects == []
    finally:
        engine.dispose()
