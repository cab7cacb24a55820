"""Write prepared batches into SQLite from a child process, so a long replay folds the next
batch on one core while the last one is written on the other.

SQLite writes inside the process that asks (it takes the GIL back for every row it binds):
written behind by a thread it came out slower than in turn, by measure. In a process of its
own it competes for nothing. The child gets the rows a batch adds (built by the parent, see
`batch_rows`) and commits them with the batch's positions (compare-and-set, as every write
does); it answers with the batch's summary, or with why it failed, and the parent's
`WriteBehind` applies a failed batch again itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from duhub.readmodel.writer import BatchRows, BatchSummary, DeadLetter
from duhub.runtime import collect_between_batches

if TYPE_CHECKING:
    from sqlalchemy import Engine

# Below this many records the child's start (a fresh interpreter importing the writer,
# about a second) costs more than overlapping the writes saves.
MIN_RECORDS = 50_000
_ROOT = str(Path(__file__).resolve().parents[2])  # where `services` and `duhub` import from


class WriteFailed(RuntimeError):
    """The child could not commit a batch (or is gone): nothing of it counts."""


class ProcessWriter:
    def __init__(self, url: str, sqlite_cache_mib: int = 64) -> None:
        # A plain child interpreter talking pickles over a socket pair: unlike
        # multiprocessing's spawn it does not run the parent's main module again, and a send
        # to a child that died fails with an error (MSG_NOSIGNAL) instead of a SIGPIPE, which
        # `duhub replay` leaves deadly (for `| head`).
        self._sock, theirs = socket.socketpair()
        path = os.pathsep.join(filter(None, (_ROOT, os.environ.get("PYTHONPATH"))))
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.aggregate.process_writer",
                url,
                str(sqlite_cache_mib),
                str(theirs.fileno()),
            ],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
        )
        theirs.close()
        self._answers = self._sock.makefile("rb")
        self.usable = True

    def write_rows(
        self,
        rows: BatchRows,
        positions: Mapping[int, int],
        dead: Sequence[DeadLetter],
        expected: Mapping[int, int],
    ) -> BatchSummary:
        """`write_rows` in the child (a `RowsWriter` for `BatchApplier.write`); raise
        WriteFailed with the child's reason (another writer moved the positions, the database
        refused) if it did not commit."""
        try:
            _send(self._sock, (rows, positions, dead, expected))
            ok, answer = pickle.load(self._answers)
        except (EOFError, OSError, pickle.UnpicklingError) as e:
            self.usable = False
            raise WriteFailed(f"the writer process is gone ({e or type(e).__name__})") from None
        if not ok:
            raise WriteFailed(answer)
        return answer  # type: ignore[no-any-return]

    @property
    def pid(self) -> int:
        return self._proc.pid

    def close(self) -> None:
        """Let the child finish (it has answered every batch sent) and wait for it."""
        self.usable = False
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)  # the end of the child's input
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._answers.close()
        self._sock.close()


def _send(sock: socket.socket, obj: Any) -> None:
    sock.sendall(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), socket.MSG_NOSIGNAL)


def serve(url: str, cache_mib: int, sock: socket.socket) -> None:
    """The child: commit each batch it is sent, answer (True, summary) or (False, reason);
    return at the end of its input."""
    from duhub.readmodel.engine import open_engine

    engine = open_engine(url, create=False, sqlite_cache_mib=cache_mib)
    requests = sock.makefile("rb")
    try:
        with collect_between_batches() as between:
            while True:
                between()  # the last batch's objects are all freed by now
                if not _serve_one(engine, requests, sock):
                    return
    finally:
        engine.dispose()


def _serve_one(engine: Engine, requests: BinaryIO, sock: socket.socket) -> bool:
    """Commit the next batch sent and answer; return False at the end of the input."""
    from duhub.readmodel.writer import write_rows

    try:
        rows, positions, dead, expected = pickle.load(requests)
    except EOFError:
        return False
    try:
        summary = write_rows(engine, rows, positions, dead, expected)
    except Exception as e:  # noqa: BLE001 - the parent decides: it applies again
        reason = str(e).splitlines()[0] if str(e) else ""
        _send(sock, (False, f"{type(e).__name__}: {reason}"))
    else:
        _send(sock, (True, summary))
    return True


if __name__ == "__main__":
    from duhub.runtime import limit_malloc_arenas, tune_gc

    limit_malloc_arenas()
    tune_gc()
    serve(sys.argv[1], int(sys.argv[2]), socket.socket(fileno=int(sys.argv[3])))
