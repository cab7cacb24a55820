"""A worker frozen inside a batch's transaction (SIGSTOP, a paused VM) holds its row locks:
PostgreSQL ends its session once idle that long, and the other workers go on; the frozen
one, resumed, fails its commit (and the applier re-reads its positions)."""

from __future__ import annotations

import os
import socket
import threading
import time

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from duhub.readmodel import engine as engine_mod
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import read_positions
from tests.infra import fresh_database

IDLE_S = 2
# Frozen long past IDLE_S, and the other worker given time to spare under it: it went on once
# PostgreSQL ended the frozen session, not once the frozen one woke (at IDLE_S + 3 and under
# IDLE_S + 2.5, a loaded host left half a second between the two).
FROZEN_S = IDLE_S + 20
GOES_ON_S = IDLE_S + 10
# Far past IDLE_S; without the timeout the other writer waited for as long as the freeze.
WAIT_LIMIT_S = 15


def _write_position(url: str, offset: int) -> float:
    """Set partition 0's position as another worker's batch would; return the seconds it
    waited (its lock_timeout fails it rather than hang the test)."""
    started = time.monotonic()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SET lock_timeout = '{WAIT_LIMIT_S}s'")
        cur.execute("UPDATE log_positions SET next_offset = %s WHERE partition = 0", (offset,))
    return time.monotonic() - started


def test_a_frozen_workers_locks_are_freed_and_its_commit_fails(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(engine_mod, "WORKER_IDLE_IN_TRANSACTION_S", IDLE_S)
    with fresh_database() as url:
        worker = open_engine(url, worker=True)
        try:
            with worker.begin() as conn:
                conn.execute(
                    text("INSERT INTO log_positions (partition, next_offset) VALUES (0, 5)")
                )
            frozen = worker.connect()
            frozen.begin()
            frozen.execute(text("UPDATE log_positions SET next_offset = 9 WHERE partition = 0"))
            # ...and the process freezes here, its row lock held.
            waited: list[float] = []
            other = threading.Thread(target=lambda: waited.append(_write_position(url, 7)))
            other.start()
            other.join(WAIT_LIMIT_S + 5)
            assert waited and waited[0] < IDLE_S + 5, "the other writer waited on the frozen one"
            # Resumed: its commit fails, nothing of its batch counts.
            with pytest.raises(OperationalError):
                frozen.commit()
            frozen.close()
            assert read_positions(worker) == {0: 7}  # a new session: the dead one is replaced
        finally:
            worker.dispose()


def _keepalive_idle(fd: int) -> int:
    """The seconds an idle socket waits before its first keepalive probe (0: none)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE):
            return 0
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
    finally:
        sock.close()


def test_the_timeout_is_set_on_workers_sessions_only() -> None:
    with fresh_database() as url:
        for worker, expected in ((True, "30s"), (False, "0")):
            engine = open_engine(url, worker=worker)
            try:
                with engine.connect() as conn:
                    got = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
                    alive = _keepalive_idle(conn.connection.dbapi_connection.fileno())
                assert (got, alive) == (expected, 10)
            finally:
                engine.dispose()


def test_a_frozen_worker_resumed_after_another_applied_its_batch_counts_nothing_twice(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    """Two workers given the same records (a rebalance while one was frozen): the frozen one
    holds its batch's locks inside its transaction, PostgreSQL ends its session, the other
    commits; the frozen one, resumed, fails its commit, re-reads and counts nothing again."""
    from duhub.readmodel import writer
    from services.aggregate.apply import BatchApplier
    from tests.unit.builders import hierarchy
    from tests.unit.test_apply_waits import new_village, record, visits, visits_counted

    monkeypatch.setattr(engine_mod, "WORKER_IDLE_IN_TRANSACTION_S", IDLE_S)
    with fresh_database() as url:
        frozen = BatchApplier(open_engine(url, worker=True))
        other = BatchApplier(open_engine(url, worker=True))
        try:
            refs = [record(2, i, e) for i, e in enumerate(hierarchy())]
            other.apply([*refs, new_village()])
            frozen.refresh()
            batch = visits(10)
            real, froze = writer._set_positions, threading.Event()

            def freeze_once(conn, *args, **kwargs):  # type: ignore[no-untyped-def]
                if threading.current_thread().name == "frozen" and not froze.is_set():
                    froze.set()
                    time.sleep(FROZEN_S)  # SIGSTOP'd with its rollup rows locked
                return real(conn, *args, **kwargs)

            monkeypatch.setattr(writer, "_set_positions", freeze_once)
            worker = threading.Thread(target=frozen.apply, args=(batch,), name="frozen")
            worker.start()
            assert froze.wait(10)
            started = time.monotonic()
            other.apply(batch)  # waits on the frozen one's locks until its session ends
            assert time.monotonic() - started < GOES_ON_S
            worker.join(FROZEN_S + 30)
            assert not worker.is_alive()
            assert frozen.positions[0] == other.positions[0] == 10
            assert visits_counted(other) == 10
        finally:
            frozen.engine.dispose()
            other.engine.dispose()
