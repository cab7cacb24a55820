"""Two processes opening one new SQLite read model at once (`duhub serve aggregate` and
`duhub serve ingest` started together on it): both open it. Before, one of them failed
nearly every time, with "table units already exists" (create_all raced the other's) or
"database is locked" (switching the new file to WAL), and the service exited with a
traceback."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

ROUNDS = 4
# Bounds every wait on a child: one dying before the barrier must fail the test, not hang it.
WAIT_S = 30


def _open(path: str, start: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from duhub.readmodel.engine import open_engine

    try:
        start.wait(WAIT_S)  # both open at once: the race this test is about
        open_engine(f"sqlite:///{path}").dispose()
        out.put("ok")
    except threading.BrokenBarrierError:
        out.put(f"the other process never reached the barrier in {WAIT_S} s")
    except Exception as e:  # noqa: BLE001 - reported to the test
        out.put(f"{type(e).__name__}: {str(e).splitlines()[0]}")


def test_two_processes_open_one_new_sqlite_read_model(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    failed = []
    for i in range(ROUNDS):
        start, out = ctx.Barrier(2), ctx.Queue()
        path = str(tmp_path / f"readmodel-{i}.db")
        # Daemons: a stuck child is killed below, never joined without a bound at exit.
        procs = [ctx.Process(target=_open, args=(path, start, out), daemon=True) for _ in range(2)]
        try:
            for p in procs:
                p.start()
            for p in procs:
                p.join(60)
            assert [p.exitcode for p in procs] == [0, 0]
            failed += [r for r in (out.get(timeout=5) for _ in procs) if r != "ok"]
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(5)
    assert failed == []
