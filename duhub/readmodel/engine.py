"""Open the read-model database (SQLite by default, PostgreSQL for production)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateIndex

from duhub.readmodel.schema import metadata

# PostgreSQL: TCP keepalives on every session, so a network path dropped without a word
# (a NAT that forgot it, a VM moved) is noticed in 10 + 3 x 5 s instead of the kernel's 2 h.
# They probe only an idle socket: no healthy statement, however long, is ever cut by them.
# Keepalives never probe a socket with data the server has not acknowledged: a path dropped
# while a statement or a COMMIT was on its way was retried by the kernel for ~15 min
# (tcp_retries2), the worker stuck in it holding its partitions, and ingest refusing every
# publish once the read model fell 200,000 events behind. TCP_USER_TIMEOUT bounds that wait
# to the same 25 s; a statement the server took, however long it runs, leaves nothing
# unacknowledged and is not cut.
PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25_000,
}
# A worker's session left idle inside a transaction this long is ended by PostgreSQL, which
# frees its row locks: one worker frozen mid-batch (SIGSTOP, a paused VM) held the rollup
# rows every partition shares and stalled the whole group for as long as it was frozen. A
# batch runs its statements back to back, so only a frozen process is idle in one this long;
# the time a statement runs is not counted (no statement_timeout: a big COPY or a backlog's
# catch-up statement may rightly take minutes). The zombie's commit then fails, and it
# re-reads its positions from the read model (apply.Applier.apply).
WORKER_IDLE_IN_TRANSACTION_S = 30


def open_engine(
    url: str,
    *,
    create: bool = True,
    sqlite_pool_size: int = 0,
    sqlite_cache_mib: int = 64,
    worker: bool = False,
) -> Engine:
    """Return an engine for `url` with the schema in place. SQLite only: at most
    `sqlite_pool_size` connections (0: SQLAlchemy's default), each with a page cache of
    `sqlite_cache_mib`. `worker`: the engine of a process that writes batches; PostgreSQL
    ends its sessions left idle in a transaction (WORKER_IDLE_IN_TRANSACTION_S). Not the
    query service's: an answer streamed to a slow client holds its snapshot meanwhile."""
    if url.startswith("postgresql://"):
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; we ship psycopg2.
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if sqlite_pool_size and ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
            # No overflow: a burst would open connections with cold page caches and close
            # them again; threads wait for a pooled one instead (a thread holds one at a time).
            kwargs["pool_size"], kwargs["max_overflow"] = sqlite_pool_size, 0
    else:
        kwargs["pool_size"] = 10
        kwargs["pool_pre_ping"] = True
        if url.startswith("postgresql"):
            # A server that does not answer (a network cut) fails a connect in 5 s instead of
            # hanging it: health probes and retries need an answer.
            connect: dict[str, Any] = {"connect_timeout": 5, **PG_KEEPALIVES}
            if worker:
                ms = int(WORKER_IDLE_IN_TRANSACTION_S * 1000)
                connect["options"] = f"-c idle_in_transaction_session_timeout={ms}"
            kwargs["connect_args"] = connect
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", partial(_sqlite_pragmas, sqlite_cache_mib))
    if create:
        _create_tables(engine)
        from duhub.readmodel.layout import upgrade  # it writes through the writer's statements

        upgrade(engine)
        _add_missing_indexes(engine)
    return engine


# Opening a new read model while another process creates it: attempts, 0.5 s apart.
CREATE_ATTEMPTS = 10


def _create_tables(engine: Engine) -> None:
    """Create the missing tables. Another process creating the same ones at the same moment
    makes this fail (PostgreSQL: IntegrityError or ProgrammingError; SQLite: OperationalError,
    "table … already exists", or "database is locked" while the other switches the new file
    to WAL, which waits for no busy timeout): look again. Before, on SQLite, `duhub serve
    aggregate` and `duhub serve ingest` started together on a new read model had one of them
    exit with a traceback (tests/unit/test_readmodel_open_race.py)."""
    sqlite = engine.dialect.name == "sqlite"
    raced = (IntegrityError, ProgrammingError, *((OperationalError,) if sqlite else ()))
    for attempt in range(CREATE_ATTEMPTS):
        try:
            metadata.create_all(engine)
            return
        except raced:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.5)


def _add_missing_indexes(engine: Engine) -> None:
    """Create the indexes a read model made by an earlier version lacks (create_all makes
    only missing tables): an index changes no answer, so such a read model stays usable.

    Only missing ones, each in a transaction of its own: CREATE INDEX locks its table
    against writes even when the index exists, and a worker's batch writes several tables,
    so asking for all of them at every open could deadlock with it (PostgreSQL)."""
    have = _index_names(engine)
    for table in metadata.sorted_tables:
        for index in table.indexes:
            if index.name in have[table.name]:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(CreateIndex(index, if_not_exists=True))
            except (IntegrityError, ProgrammingError, OperationalError):
                # Another process created it at the same moment: fine once it is there.
                if index.name not in _index_names(engine)[table.name]:
                    raise


def _index_names(engine: Engine) -> dict[str, set[str | None]]:
    """Return the names of each table's indexes (catalog reads: no table is locked)."""
    inspector = inspect(engine)
    tables = metadata.sorted_tables
    return {t.name: {i["name"] for i in inspector.get_indexes(t.name)} for t in tables}


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """Yield a connection whose statements all read one state of the read model, for an
    answer read in several statements: a batch committed meanwhile counts in all of them or
    in none (else an as-of figure would subtract the facts of a batch its rollups did not
    hold yet, and an explanation list events its total leaves out)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Read committed takes a snapshot per statement; repeatable read one for the
            # transaction, at its first query (read only: it never fails to serialize).
            # Set by statement: through the driver's session settings, giving the connection
            # back to the pool cost two SET statements more.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        else:
            # pysqlite opens no transaction for reads: each SELECT would see the latest
            # commit. In one, they share the read mark of the first (WAL).
            conn.exec_driver_sql("BEGIN")
        yield conn


def dbapi_cursor(conn: Connection) -> Any:
    """Return a DB-API cursor in the connection's transaction, for the hot paths where
    SQLAlchemy's per-row handling cost more than the database (by profile)."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def driver_sql(conn: Connection, sql: str) -> str:
    """Return `sql` (placeholders written `?`) in the placeholders of the connection's driver:
    `%s` for PostgreSQL's. The SQL holds no literal `?` or `%`."""
    return sql if conn.dialect.name == "sqlite" else sql.replace("?", "%s")


def plain_rows(conn: Connection, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Run `sql` (placeholders written `?`) on a DB-API cursor in the connection's transaction
    and return its rows: for the statements every answer asks (a scope, a campaign's version,
    the applied positions, the sums), where building them through SQLAlchemy cost several
    times the query (by measure). Placeholders as `driver_sql` has them."""
    cursor = dbapi_cursor(conn)
    try:
        cursor.execute(driver_sql(conn, sql), tuple(params))
        return cursor.fetchall()
    finally:
        cursor.close()


# Bytes a checkpointed WAL is cut back to (SQLite's journal_size_limit).
WAL_SIZE_LIMIT = 8 * 1024 * 1024


def _sqlite_pragmas(cache_mib: int, dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the query service read while the aggregator writes. NORMAL sync may lose the
    # last commits on power loss, which is safe: positions commit with rows, so the aggregator
    # re-applies them from the log, which is the durable truth.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=OFF")
    cur.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
    # A WAL that readers held from its checkpoints grows (51 MB in a soak's minute of as-of
    # reads) and stayed that size until the hub stopped: cut back to this once checkpointed.
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cur.close()
