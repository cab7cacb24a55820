"""A digest of a read model, table by table, and where two read models differ.

Rows are hashed in primary-key order under a byte-wise collation, so SQLite and PostgreSQL
holding the same figures give the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, String, Table, Text, select

from duhub.readmodel import schema as s
from duhub.readmodel.engine import snapshot

# A read model: its engine, or a connection reading one state of it (`snapshot`).
Source = Engine | Connection

# Everything derived from the log except bookkeeping of the run itself (positions) and the
# surrogate key of fact rows.
TABLES: tuple[Table, ...] = (
    s.units,
    s.campaigns,
    s.campaign_groups,
    s.campaign_targets,
    s.coverage,
    s.coverage_firsts,
    s.problems,
    s.letters,
    s.events_seen,
    s.source_heads,
    s.rollups,
    s.facts,
    s.dead_letters,
)
SKIP_COLUMNS = {("facts", "id")}


@contextmanager
def _reading(source: Source) -> Iterator[Connection]:
    """Read an engine's tables in one snapshot: a read model being written to gives the
    digest of one state of it, not of a table per state."""
    if isinstance(source, Connection):
        yield source
        return
    with snapshot(source) as conn:
        yield conn


def _order(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    keys = list(table.primary_key.columns)
    if table.name == "facts":
        keys = [table.c.event_id, table.c.metric]
    byte_wise = "C" if conn.dialect.name == "postgresql" else "BINARY"
    return [k.collate(byte_wise) if isinstance(k.type, String | Text) else k for k in keys]


def _rows(conn: Connection, table: Table) -> Iterator[tuple[object, ...]]:
    cols = [c for c in table.columns if (table.name, c.name) not in SKIP_COLUMNS]
    result = conn.execute(
        select(*cols).order_by(*_order(conn, table)), execution_options={"stream_results": True}
    )
    for row in result:
        yield tuple(_plain(v) for v in row)


def _plain(v: object) -> object:
    if isinstance(v, bytes | memoryview):
        return bytes(v).hex()
    if isinstance(v, bool):
        return int(v)
    return v


def table_digests(source: Source) -> dict[str, str]:
    """Return the SHA-256 of each table's rows (all of one state of the read model)."""
    out = {}
    with _reading(source) as conn:
        for table in TABLES:
            h = hashlib.sha256()
            for row in _rows(conn, table):
                h.update(repr(row).encode())
            out[table.name] = h.hexdigest()
    return out


def digest(tables: dict[str, str]) -> str:
    """Return one digest over the table digests."""
    return hashlib.sha256(repr(sorted(tables.items())).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FigureDiff:
    scope_id: str
    metric: str
    area: str
    grain: int
    bucket: int
    left: int
    right: int


def figure_diffs(left: Source, right: Source, limit: int = 50) -> list[FigureDiff]:
    """Return the rollup figures (per scope, metric, area and bucket) that differ."""

    def load(source: Source) -> dict[tuple[str, str, str, int, int], int]:
        r = s.rollups.c
        with _reading(source) as conn:
            q = select(r.scope_id, r.metric, r.area, r.grain, r.bucket, r.value)
            return {tuple(row[:5]): int(row[5]) for row in conn.execute(q)}  # type: ignore[misc]

    a, b = load(left), load(right)
    out = []
    for key in sorted(a.keys() | b.keys()):
        if a.get(key, 0) != b.get(key, 0):
            out.append(FigureDiff(*key, a.get(key, 0), b.get(key, 0)))
            if len(out) >= limit:
                break
    return out
