"""Answer campaign coverage: per group, per tier and per county, for a scope and moment."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, and_, select

from duhub.domain.events import Nanos, Tier
from duhub.domain.model import Campaign
from duhub.readmodel import schema as s
from duhub.readmodel.knowledge import load_campaign
from duhub.readmodel.statistics import NotFound
from duhub.readmodel.units import resolve_scope, subtree_clause


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

    @property
    def full(self) -> bool:
        return all(g.full for g in self.groups)


def coverage(
    engine: Engine, campaign_id: str, scope_unit_id: str = "", as_of: Nanos | None = None
) -> CoverageReport:
    """Return coverage of the campaign's targets inside the scope, as known at `as_of`."""
    campaign = load_campaign(engine, campaign_id)
    if campaign is None or (as_of is not None and campaign.recorded_at > as_of):
        raise NotFound(f"campaign_id: unknown campaign '{campaign_id}'")
    t, c = s.campaign_targets.c, s.coverage.c
    covered_now = and_(
        c.campaign_id == t.campaign_id, c.group_id == t.group_id, c.unit_id == t.unit_id
    )
    if as_of is not None:
        covered_now = and_(covered_now, c.first_recorded_at <= as_of)
    with engine.connect() as conn:
        q = (
            select(t.group_id, t.unit_id, t.unit_path, c.first_at)
            .select_from(s.campaign_targets.outerjoin(s.coverage, covered_now))
            .where(t.campaign_id == campaign_id)
            .order_by(t.group_id, t.ordinal)
        )
        if scope_unit_id:
            scope = resolve_scope(conn, scope_unit_id)
            q = q.where(subtree_clause(t.unit_path, scope.path))
        rows = conn.execute(q).all()
        county_ids = {r.unit_path.split("/")[2] for r in rows if r.unit_path.count("/") > 2}
        q = select(s.units.c.unit_id, s.units.c.name).where(s.units.c.unit_id.in_(county_ids))
        names = {r.unit_id: r.name for r in conn.execute(q)}
    groups = {g.group_id: Tally(g.group_id, g.name, g.tier) for g in campaign.groups}
    tiers = {tier: Tally(tier.name, tier.name, tier) for tier in Tier}
    counties: dict[str, Tally] = {}
    for r in rows:
        parts = r.unit_path.split("/")
        tallies = [groups[r.group_id], tiers[groups[r.group_id].tier]]
        if len(parts) > 3:  # a target at or below a county
            county = parts[2]
            if county not in counties:
                counties[county] = Tally(county, names.get(county, county), None)
            tallies.append(counties[county])
        for tally in tallies:
            tally.targets += 1
            if r.first_at is None:
                tally.uncovered.append(r.unit_id)
            else:
                tally.covered += 1
                tally.last_first_at = max(tally.last_first_at, r.first_at)
    return CoverageReport(
        campaign=campaign,
        scope_unit_id=scope_unit_id,
        groups=list(groups.values()),
        tiers=[tiers[x] for x in Tier],
        counties=sorted(counties.values(), key=lambda x: x.key),
        as_of=as_of,
    )
