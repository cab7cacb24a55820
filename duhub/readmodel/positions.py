"""The applied positions read on a database connection kept for them.

The query service reads them at every request it answers from its cache, and at every
GetProgress. Through the engine's pool each read was a checkout, a reset and a return around a
one-line statement: ~60 us of CPU of an answer served in ~0.45 ms (`duhub serve query`, by
profile; 15 us in a tight loop, 5 us on a connection kept). The connection kept here is in
autocommit mode, so each read is a statement of its own and sees every commit made before it,
as a fresh connection would: an answer is never older than what GetProgress shows.

Nobody waits for it: a read that finds it in use, or broken a moment ago, reads through the
engine's pool as before. So a database that is away costs each request what it cost before
(one connect through the engine, UNAVAILABLE), not a queue behind one connect at a time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from duhub.readmodel.writer import POSITIONS_SQL, read_positions

# After the kept connection failed, reads go through the engine this long before it is
# opened again: at most one connect a second of its own while the database is away.
RETRY_S = 1.0


class PositionsReader:
    """Reads the applied positions per partition on one connection of its own (opened at the
    first read, closed when the engine is disposed)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._held: PoolProxiedConnection | None = None
        self._busy = False  # a read is using it
        self._dropped = False  # closed while in use: dropped when that read is done
        self._retry_at = 0.0
        # An in-memory SQLite database is one per connection: a connection of its own would
        # read another, empty one. Read through the engine's (its only) connection there.
        self._own = engine.dialect.name != "sqlite" or engine.url.database not in (
            None,
            "",
            ":memory:",
        )
        # The engine's pool, made anew: its connect listeners (SQLite's pragmas) run, and the
        # connection kept takes none of the places the answers are computed on.
        self._pool = engine.pool.recreate()
        event.listen(engine, "engine_disposed", self._disposed)

    def read(self) -> dict[int, int]:
        """Return the next offset to apply per partition, as committed now."""
        held = self._take()
        if held is None:
            return read_positions(self.engine)
        try:
            cursor = held.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(POSITIONS_SQL)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except self.engine.dialect.loaded_dbapi.Error:
            self._give_back(held, broken=True)
            # The connection was lost (a restarted database): the engine reconnects, or
            # raises what SQLAlchemy raises for a database away (UNAVAILABLE).
            return read_positions(self.engine)
        except BaseException:
            self._give_back(held, broken=True)
            raise
        self._give_back(held, broken=False)
        return {int(p): int(o) for p, o in rows}

    def close(self) -> None:
        """Close the connection kept (at once, or when the read using it is done)."""
        with self._lock:
            held, self._held = self._held, None
            self._dropped = in_use = self._busy
        if held is not None and not in_use:
            held.invalidate()  # closed, never handed to anyone else
        self._pool.dispose()

    def _take(self) -> PoolProxiedConnection | None:
        """Return the kept connection, opening it if need be; None when another read has it,
        or it failed a moment ago."""
        with self._lock:
            if not self._own or self._busy or time.monotonic() < self._retry_at:
                return None
            self._busy, self._dropped = True, False
            held = self._held
        if held is not None:
            return held
        try:
            held = self._pool.connect()
            try:
                self.engine.dialect.set_isolation_level(held.dbapi_connection, "AUTOCOMMIT")
            except BaseException:
                held.invalidate()
                raise
        except self.engine.dialect.loaded_dbapi.Error as e:
            with self._lock:
                self._busy, self._retry_at = False, time.monotonic() + RETRY_S
            # As the engine would have raised it (UNAVAILABLE), not a second connect.
            raise DBAPIError.instance(None, None, e, self.engine.dialect.loaded_dbapi.Error) from e
        except BaseException:
            with self._lock:
                self._busy = False
            raise
        return held

    def _give_back(self, held: PoolProxiedConnection, broken: bool) -> None:
        with self._lock:
            self._busy = False
            drop = broken or self._dropped
            self._held = None if drop else held
            if broken:
                self._retry_at = time.monotonic() + RETRY_S
        if drop:
            held.invalidate()

    def _disposed(self, _engine: Any) -> None:
        self.close()
