"""The dead letters: records of the log the hub refused, newest first, for `duhub deadletters`
(RPC ListDeadLetters). A read, no writes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from duhub.domain.events import Nanos
from duhub.readmodel import schema as s
from duhub.readmodel.engine import snapshot
from duhub.readmodel.lineage import listed_at_most
from duhub.readmodel.units import resolve_scope, subtree_clause


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    partition: int
    offset: int
    event_id: str  # "" when the value names none
    source: str  # "" when the value names none
    recorded_at: Nanos | None  # None when the hub cannot tell (`schema.dead_letters`)
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetters:
    # Every dead letter asked about, and the first `limit` of them.
    total: int
    letters: list[DeadLetterRow]

    @property
    def truncated(self) -> bool:
        return len(self.letters) < self.total


def list_dead_letters(
    engine: Engine,
    source: str = "",
    within: str = "",
    since: Nanos | None = None,
    limit: int = 0,
) -> DeadLetters:
    """Return the dead letters of `source` ("": any), of the sources that are units of the
    subtree of `within` ("": any, those naming no source too), recorded at or after `since`.
    Newest first (an operator looks for what was just refused), one time's by log position
    last first, those whose time is unknown last. Raise QueryError for a limit too large."""
    limit = listed_at_most(limit, "dead letters", "total")
    d = s.dead_letters.c
    where = []
    if source:
        where.append(d.source == source)
    if since is not None:
        where.append(d.recorded_at >= since)
    with snapshot(engine) as conn:
        if within:
            scope = resolve_scope(conn, within, "source")
            units = select(s.units.c.unit_id).where(subtree_clause(s.units.c.path, scope.path))
            where.append(d.source.in_(units))
        total = conn.execute(select(func.count()).select_from(s.dead_letters).where(*where))
        rows = conn.execute(
            select(d.partition, d.offset, d.event_id, d.source, d.recorded_at, d.reason)
            .where(*where)
            .order_by(d.recorded_at.desc().nulls_last(), d.partition.desc(), d.offset.desc())
            .limit(limit)
        ).all()
        return DeadLetters(
            int(total.scalar_one()),
            [DeadLetterRow(p, o, e, src or "", at, why) for p, o, e, src, at, why in rows],
        )
