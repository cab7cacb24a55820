"""Two processes opening one new SQLite read model at once (`duhub serve aggregate` and
`duhub serve ingest` started together on it): both open it. Before, one of them failed
nearly every time, with "table units already exists" (create_all raced the other's) or
"database is locked" (switching the new file to WAL), and the service exited with a
traceback."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

ROUNDS = 4


def _open(path: str, start: mp.synchronize.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from duhub.readmodel.engine import open_engine

    start.wait()
    try:
        open_engine(f"sqlite:///{path}").dispose()
        out.put("ok")
    except Exception as e:  # noqa: BLE001 - reported to the test
        out.put(f"{type(e).__name__}: {str(e).splitlines()[0]}")


def test_two_processes_open_one_new_sqlite_read_model(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    failed = []
    for i in range(ROUNDS):
        start, out = ctx.Barrier(2), ctx.Queue()
        path = str(tmp_path / f"readmodel-{i}.db")
        procs = [ctx.Process(target=_open, args=(path, start, out)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failed += [r for r in (out.get(timeout=5) for _ in procs) if r != "ok"]
    assert failed == []
