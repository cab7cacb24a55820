"""Lineage of coverage: which visit covered each covered target, for a scope and moment.

The covered targets listed are those `coverage` counts for the same question, one line each:
the visit named is the target's earliest covering visit among those counted (of two at one
moment, the lesser event id), which is when the target became covered.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from duhub.domain.events import Nanos
from duhub.readmodel.coverage import (
    Moments,
    ScopeTargets,
    covering_rows,
    known_targets,
    targets_in,
)
from duhub.readmodel.engine import plain_rows, snapshot
from duhub.readmodel.lineage import DEFAULT_LIMIT, listed_at_most
from duhub.readmodel.statistics import QueryError
from duhub.readmodel.units import resolve_scope

# Ids named in one statement at most (SQLite's oldest limit on bound parameters is 999).
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class CoveringVisit:
    group_id: str
    unit_id: str
    unit_name: str
    # The visit: "" where a read model made before visits were named cannot tell which
    # (`layout._add_coverage_events`); its times are then the target's row's.
    event_id: str
    source: str
    seq: int
    occurred_at: Nanos
    recorded_at: Nanos
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class CoverageLineage:
    campaign_id: str
    group_id: str
    targets: int
    covered: int
    visits: list[CoveringVisit]

    @property
    def truncated(self) -> bool:
        return len(self.visits) < self.covered


def explain_coverage(
    engine: Engine,
    campaign_id: str,
    scope_unit_id: str = "",
    group_id: str = "",
    as_of: Nanos | None = None,
    occurred_before: Nanos | None = None,
    limit: int = DEFAULT_LIMIT,
) -> CoverageLineage:
    """Return the covering visit of each covered target of the campaign inside the scope (of
    one group, or all), as `coverage` counts them at the same moments; the first `limit` in
    target order, and always the whole count."""
    limit = listed_at_most(limit, "targets", "covered and targets")
    targets = known_targets(engine, campaign_id, as_of)
    campaign = targets.campaign
    if group_id and campaign.group(group_id) is None:
        known = ", ".join(g.group_id for g in campaign.groups)
        raise QueryError(
            f"group_id: campaign '{campaign_id}' has no group '{group_id}'; its groups: {known}"
        )
    at = Moments(as_of, occurred_before)
    with snapshot(engine) as conn:
        path = resolve_scope(conn, scope_unit_id).path if scope_unit_id else ""
        scope = targets_in(targets, path)
        # (group, target) -> its place in target order, for the groups asked about.
        wanted = {
            key: place for key, place in scope.place.items() if not group_id or key[0] == group_id
        }
        # No target inside the scope: nothing to read (PostgreSQL refuses an empty IN list).
        firsts = _covering(conn, campaign_id, at, scope, group_id) if wanted else {}
        covered = sorted((wanted[k], k, v) for k, v in firsts.items() if k in wanted)
        listed = covered[:limit]
        events = _events(conn, [v[2] for _, _, v in listed if v[2]])
        names = _names(conn, sorted({u for _, (_, u), _ in listed}))
    visits = []
    for _, (g, u), (first_at, recorded_at, event_id) in listed:
        e = events.get(event_id) if event_id else None
        visits.append(
            CoveringVisit(g, u, names.get(u, ""), *e)
            if e is not None
            else CoveringVisit(g, u, names.get(u, ""), "", "", 0, first_at, recorded_at, 0, 0)
        )
    return CoverageLineage(campaign_id, group_id, len(wanted), len(covered), visits)


def _covering(
    conn: Connection, campaign_id: str, at: Moments, scope: ScopeTargets, group_id: str
) -> dict[tuple[str, str], tuple[Nanos, Nanos, str]]:
    """Return per covered (group, target) of the scope its covering visit's (event time,
    record time, event id) at the moments asked about: of its rows `coverage` counts, the one
    of least (event time, event id)."""
    rows = covering_rows(campaign_id, at, scope)
    where, params = rows.where, list(rows.params)
    if group_id:
        where += " AND group_id = ?"
        params.append(group_id)
    out: dict[tuple[str, str], tuple[Nanos, Nanos, str]] = {}
    for g, u, first, rec, eid in plain_rows(
        conn,
        f"SELECT group_id, unit_id, first_at, {rows.recorded}, {rows.event} FROM {rows.table} "
        f"WHERE {where}",
        params,
    ):
        old = out.get((g, u))
        if old is None or (first, eid or "") < (old[0], old[2]):
            out[(g, u)] = (first, rec, eid or "")
    return out


def _events(conn: Connection, ids: list[str]) -> dict[str, tuple[object, ...]]:
    """event id -> (event id, source, seq, occurred, recorded, partition, offset)."""
    out: dict[str, tuple[object, ...]] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        for row in plain_rows(
            conn,
            'SELECT event_id, source, seq, occurred_at, recorded_at, partition, "offset" '
            f"FROM events_seen WHERE event_id IN ({', '.join('?' * len(chunk))})",
            chunk,
        ):
            out[row[0]] = row
    return out


def _names(conn: Connection, unit_ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(unit_ids), _CHUNK):
        chunk = unit_ids[i : i + _CHUNK]
        out.update(
            plain_rows(
                conn,
                f"SELECT unit_id, name FROM units WHERE unit_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
        )
    return out
