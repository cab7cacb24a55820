"""Answer campaign coverage: per group, per tier and per county, for a scope and moment."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, select

from duhub.convert import from_nanos
from duhub.domain.events import Nanos, Tier
from duhub.domain.model import Campaign
from duhub.readmodel import schema as s
from duhub.readmodel.engine import plain_rows, snapshot
from duhub.readmodel.knowledge import load_campaign
from duhub.readmodel.statistics import NotFound
from duhub.readmodel.units import resolve_scope


@dataclass(slots=True)
class Tally:
    key: str
    name: str
    tier: Tier | None
    targets: int = 0
    covered: int = 0
    uncovered: list[str] = field(default_factory=list)
    last_first_at: Nanos = 0

    @property
    def ratio(self) -> float:
        # A group without targets (the task force) does not hold coverage back.
        return self.covered / self.targets if self.targets else 1.0

    @property
    def full(self) -> bool:
        return self.covered == self.targets

    @property
    def full_at(self) -> Nanos | None:
        """Event time at which the last target was first covered (None: not full, or none)."""
        return self.last_first_at if self.full and self.targets else None


@dataclass(slots=True)
class CoverageReport:
    campaign: Campaign
    scope_unit_id: str
    groups: list[Tally]
    tiers: list[Tally]
    counties: list[Tally]
    as_of: Nanos | None
    # Event time: only visits that occurred before it count (None: every visit).
    occurred_before: Nanos | None = None
    # The campaign's targets' names (`Targets.names`), for naming the uncovered.
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return all(g.full for g in self.groups)


@dataclass(frozen=True, slots=True)
class Targets:
    """A campaign's targets with their paths and counties (in group_id, ordinal order) and the
    counties' names: fixed once the campaign is launched, so each process reads them once."""

    campaign: Campaign
    rows: tuple[tuple[str, str, str, str], ...]  # group_id, unit_id, unit_path, county ("")
    county_names: dict[str, str]
    # Each target's name: units are never renamed, so read with the targets, not per answer
    # (the command line asked GetUnit for each uncovered target it showed).
    names: dict[str, str]
    # Scope path ("": the whole campaign) -> its targets by (group, county), kept as they are
    # asked for (at most one entry per unit of the hierarchy).
    scopes: dict[str, ScopeTargets] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScopeTargets:
    """The targets of a campaign inside one scope, and how to ask for their coverage rows."""

    # (group, county) -> the target units, both in target order.
    pairs: dict[tuple[str, str], list[str]]
    # Groups whose targets here are not in one block per county: their uncovered are sorted
    # back into target order (`place`).
    unordered: frozenset[str]
    place: dict[tuple[str, str], int]
    # The condition on coverage rows beyond the campaign, with its parameters; `exact` when it
    # holds exactly the scope's targets (else rows are read and kept to the scope in Python).
    where: str
    params: tuple[str, ...]
    exact: bool


# Per engine (a process may hold several): campaign id -> its targets.
_TARGETS: WeakKeyDictionary[Engine, dict[str, Targets]] = WeakKeyDictionary()
_LOCK = threading.Lock()


def _targets(engine: Engine, campaign_id: str) -> Targets | None:
    # One connection at a time (load_campaign takes its own): never two held by one thread.
    with engine.connect() as conn:
        found_at = plain_rows(
            conn, "SELECT recorded_at FROM campaigns WHERE campaign_id = ?", (campaign_id,)
        )
    if not found_at:
        return None
    recorded_at = found_at[0][0]
    with _LOCK:
        known = _TARGETS.setdefault(engine, {})
        found = known.get(campaign_id)
    # recorded_at tells a read model rebuilt from another log under the same engine apart.
    if found is not None and found.campaign.recorded_at == recorded_at:
        return found
    campaign = load_campaign(engine, campaign_id)
    if campaign is None:
        return None
    t, u = s.campaign_targets.c, s.units.c
    q = (
        select(t.group_id, t.unit_id, t.unit_path, u.name)
        .select_from(s.campaign_targets.outerjoin(s.units, u.unit_id == t.unit_id))
        .where(t.campaign_id == campaign_id)
        .order_by(t.group_id, t.ordinal)
    )
    rows = []
    target_names = {}
    with engine.connect() as conn:
        for group_id, unit_id, path, name in conn.execute(q):
            rows.append((group_id, unit_id, path, s.county_of(path)))
            if name is not None:
                target_names[unit_id] = name
        county_ids = {r[3] for r in rows if r[3]}
        names = dict(conn.execute(select(u.unit_id, u.name).where(u.unit_id.in_(county_ids))).all())
    found = Targets(campaign, tuple(rows), names, target_names)
    with _LOCK:
        known[campaign_id] = found
    return found


def known_targets(engine: Engine, campaign_id: str, as_of: Nanos | None) -> Targets:
    """Return a campaign's targets; raise NotFound for a campaign unknown, or not yet
    recorded at `as_of`."""
    targets = _targets(engine, campaign_id)
    if targets is None:
        raise NotFound(f"campaign_id: unknown campaign '{campaign_id}'")
    recorded_at = targets.campaign.recorded_at
    if as_of is not None and recorded_at > as_of:
        # Unknown then, known now: not a mistyped id, so the moment is named, not the id.
        raise NotFound(
            f"as_of: campaign '{campaign_id}' was not yet recorded at that moment (it was "
            f"recorded at {from_nanos(recorded_at).ToJsonString()})"
        )
    return targets


# A scope's targets are named in the coverage queries up to this many (SQLite's oldest limit
# on bound parameters is 999); more, and the rows of the scope's county are read.
MAX_NAMED_TARGETS = 900


def targets_in(targets: Targets, scope_path: str) -> ScopeTargets:
    found = targets.scopes.get(scope_path)
    if found is not None:
        return found
    pairs: dict[tuple[str, str], list[str]] = {}
    place: dict[tuple[str, str], int] = {}
    last: dict[str, str] = {}  # group -> county of its last target seen
    unordered = set()
    for i, (group_id, unit_id, path, c) in enumerate(targets.rows):
        if scope_path and not path.startswith(scope_path):
            continue
        units = pairs.get((group_id, c))
        if units is None:
            units = pairs[(group_id, c)] = []
        elif last.get(group_id) != c:
            unordered.add(group_id)
        last[group_id] = c
        units.append(unit_id)
        place[(group_id, unit_id)] = i
    depth = scope_path.count("/") - 2  # -2: no scope, 0: the city, 1: a county
    where, params, exact = "", (), True
    county = s.county_of(scope_path)
    if depth == 1:
        where, params = " AND county_id = ?", (county,)
    elif depth > 1:
        named = sorted({u for units in pairs.values() for u in units})
        if len(named) <= MAX_NAMED_TARGETS:
            where, params = f" AND unit_id IN ({', '.join('?' * len(named))})", tuple(named)
        else:
            where, params, exact = " AND county_id = ?", (county,), False
    found = ScopeTargets(pairs, frozenset(unordered), place, where, params, exact)
    targets.scopes[scope_path] = found
    return found


@dataclass(frozen=True, slots=True)
class Moments:
    """Which visits an answer counts: those recorded at or before `as_of` (the hub's
    knowledge then) that occurred before `occurred_before` (the coverage as it stood then in
    event time); None leaves a side open."""

    as_of: Nanos | None = None
    occurred_before: Nanos | None = None


def _counts(
    conn: Connection, campaign_id: str, at: Moments, scope: ScopeTargets
) -> dict[tuple[str, str], tuple[int, Nanos]]:
    """Return per (group, county) how many of the scope's targets are covered and when the
    last of them was first covered: summed by the database from its index, a row per pair
    however many targets are covered."""
    rows, params = _covered_rows(campaign_id, at, scope)
    sql = f"SELECT group_id, county_id, count(*), max(first_at) FROM {rows}"
    sql += " GROUP BY group_id, county_id"
    return {(g, c): (n, last) for g, c, n, last in plain_rows(conn, sql, params)}


@dataclass(frozen=True, slots=True)
class CoveringRows:
    """The rows behind the scope's covered targets at some moments, with their parameters:
    a target is covered when it has a row, and its covering visit is its row of least
    (first_at, `event`). Columns: group_id, county_id, unit_id, first_at, `recorded`, `event`."""

    table: str
    recorded: str
    event: str
    where: str  # a condition on `table`, beginning with its campaign
    params: list[object]
    # One row per covered target (the current coverage), or several (as the hub learned it).
    one_per_target: bool


def covering_rows(campaign_id: str, at: Moments, scope: ScopeTargets) -> CoveringRows:
    """Return the rows of the scope's targets covered as known at `at.as_of` by visits before
    `at.occurred_before`: what `coverage` counts and `explain_coverage` names, from one place."""
    # A target was covered before a moment when its earliest covering visit was: the earliest
    # is what each row keeps, so a condition on it is the whole answer.
    before, before_params = (
        ("", []) if at.occurred_before is None else (" AND first_at < ?", [at.occurred_before])
    )
    if at.as_of is None:
        return CoveringRows(
            "coverage",
            "first_recorded_at",
            "first_event_id",
            "campaign_id = ?" + scope.where + before,
            [campaign_id, *scope.params, *before_params],
            one_per_target=True,
        )
    # Each target's first covering visit among those recorded by then, from the rows of when
    # it was first covered as the hub learned it (`coverage_firsts`): a visit dated earlier
    # but recorded later was not known then.
    return CoveringRows(
        "coverage_firsts",
        "recorded_at",
        "event_id",
        "campaign_id = ? AND recorded_at <= ?" + scope.where + before,
        [campaign_id, at.as_of, *scope.params, *before_params],
        one_per_target=False,
    )


def _covered_rows(campaign_id: str, at: Moments, scope: ScopeTargets) -> tuple[str, list[object]]:
    """Return the FROM and WHERE of the scope's covered targets, one row each (group_id,
    county_id, unit_id, first_at), and their parameters."""
    rows = covering_rows(campaign_id, at, scope)
    if rows.one_per_target:
        return f"{rows.table} WHERE {rows.where}", list(rows.params)
    known = (
        f"(SELECT group_id, county_id, unit_id, min(first_at) AS first_at FROM {rows.table} "
        f"WHERE {rows.where} GROUP BY group_id, county_id, unit_id) AS known WHERE 1 = 1"
    )
    return known, list(rows.params)


# Partly covered pairs are named in the query up to this many; more, and all are read.
MAX_NAMED_PAIRS = 40


def _first_covered(
    conn: Connection,
    campaign_id: str,
    at: Moments,
    scope: ScopeTargets,
    pairs: list[tuple[str, str]],
) -> dict[tuple[str, str], Nanos]:
    """Return when each covered (group, target) of the scope in `pairs` was first covered."""
    if not pairs:
        return {}
    rows, params = _covered_rows(campaign_id, at, scope)
    sql = f"SELECT group_id, unit_id, first_at FROM {rows}"
    if len(pairs) <= MAX_NAMED_PAIRS:
        sql += " AND (" + " OR ".join(["(group_id = ? AND county_id = ?)"] * len(pairs)) + ")"
        params += [x for pair in pairs for x in pair]
    return {(g, u): at for g, u, at in plain_rows(conn, sql, params)}


def coverage(
    engine: Engine,
    campaign_id: str,
    scope_unit_id: str = "",
    as_of: Nanos | None = None,
    occurred_before: Nanos | None = None,
) -> CoverageReport:
    """Return coverage of the campaign's targets inside the scope, as known at `as_of`
    (record time), by the visits that occurred before `occurred_before` (event time: the
    coverage on a given day).

    The database counts the covered targets per group and county; the rows of single
    targets are read only for the (group, county) pairs partly covered. At 10M events a
    city-wide campaign fully covered answered from 1,159 rows before (the whole answer ~1.0
    ms at 10M against ~0.5 at 10k, by measure); now from a row per pair.
    """
    targets = known_targets(engine, campaign_id, as_of)
    at = Moments(as_of, occurred_before)
    with snapshot(engine) as conn:
        scope = targets_in(
            targets, resolve_scope(conn, scope_unit_id).path if scope_unit_id else ""
        )
        if not scope.pairs:  # no target inside the scope: nothing to read
            counts, first = {}, {}
        elif scope.exact:
            counts = _counts(conn, campaign_id, at, scope)
            partial = [
                pair
                for pair, units in scope.pairs.items()
                if 0 < counts.get(pair, (0, 0))[0] < len(units)
            ]
            first = _first_covered(conn, campaign_id, at, scope, partial)
        else:
            first = _first_covered(conn, campaign_id, at, scope, list(scope.pairs))
            counts = {}
            for (group_id, c), units in scope.pairs.items():
                ats = [first[(group_id, u)] for u in units if (group_id, u) in first]
                counts[(group_id, c)] = (len(ats), max(ats, default=0))
    return _report(targets, scope, counts, first, scope_unit_id, at)


def _report(
    targets: Targets,
    scope: ScopeTargets,
    counts: dict[tuple[str, str], tuple[int, Nanos]],
    first: dict[tuple[str, str], Nanos],
    scope_unit_id: str,
    at: Moments,
) -> CoverageReport:
    """Spread the counts per (group, county) over the group, tier and county tallies; list
    the uncovered targets of each in target order."""
    campaign = targets.campaign
    groups = {g.group_id: Tally(g.group_id, g.name, g.tier) for g in campaign.groups}
    tiers = {tier: Tally(tier.name, tier.name, tier) for tier in Tier}
    counties: dict[str, Tally] = {}
    names = targets.county_names
    order: list[str] = []  # groups in target order
    for (group_id, county), units in scope.pairs.items():
        covered, last = counts.get((group_id, county), (0, 0))
        group = groups[group_id]
        if not order or order[-1] != group_id:
            order.append(group_id)
        tallies = [group, tiers[group.tier]]  # type: ignore[index]
        county_tally = None
        if county:  # a target at or below a county
            county_tally = counties.get(county)
            if county_tally is None:
                county_tally = counties[county] = Tally(county, names.get(county, county), None)
            tallies.append(county_tally)
        for tally in tallies:
            tally.targets += len(units)
            tally.covered += covered
            if last > tally.last_first_at:
                tally.last_first_at = last
        if covered < len(units):
            missing = units if not covered else [u for u in units if (group_id, u) not in first]
            group.uncovered += missing
            if county_tally is not None:
                county_tally.uncovered += missing
    for group_id in order:
        if group_id in scope.unordered:
            groups[group_id].uncovered.sort(key=lambda u, g=group_id: scope.place[(g, u)])
    for group in groups.values():  # a tier's: its groups' in the order the answer lists them
        tiers[group.tier].uncovered += group.uncovered  # type: ignore[index]
    return CoverageReport(
        campaign=campaign,
        scope_unit_id=scope_unit_id,
        groups=list(groups.values()),
        tiers=[tiers[x] for x in Tier],
        counties=sorted(counties.values(), key=lambda x: x.key),
        as_of=at.as_of,
        occurred_before=at.occurred_before,
        names=targets.names,
    )
