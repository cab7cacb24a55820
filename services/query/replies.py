"""Read-model answers -> protobuf replies."""

from __future__ import annotations

from duhub.convert import from_nanos
from duhub.domain.model import Campaign, Unit
from duhub.readmodel.coverage import CoverageReport, Tally
from duhub.readmodel.coverage_lineage import CoverageLineage
from duhub.readmodel.dead_letters import DeadLetters
from duhub.readmodel.group_figures import GroupFigures, GroupRow
from duhub.readmodel.lineage import Explanation
from duhub.readmodel.statistics import Figures, Row
from duhub.v1 import events_pb2 as epb
from duhub.v1 import query_pb2 as qpb

# Uncovered units named (GroupCoverage.uncovered_units), as many a group as asked, and in all
# so many that a reply grows by ~0.6 MB at most. Naming all 100,000 targets of a campaign
# uncovered at an early as_of would add ~3 MB, past the 4 MB a stock gRPC client takes.
UNCOVERED_NAMED_IN_ALL = 20_000


def named_per_group(uncovered: list[int], most: int, in_all: int) -> int:
    """Return how many of each group's first uncovered units to name (`uncovered`: how many
    each group has): every group alike, up to `most`, as many as keep the total within
    `in_all`. Alike, not first come: 2,800 county groups would otherwise leave all but the
    first 133 unnamed, where 7 a group names every one the command line shows."""
    lo, hi = 0, most
    while lo < hi:  # the largest k with sum(min(n, k)) <= in_all
        k = (lo + hi + 1) // 2
        if sum(min(n, k) for n in uncovered) <= in_all:
            lo = k
        else:
            hi = k - 1
    return lo


def coverage_reply(r: CoverageReport, uncovered_named: int = 0) -> qpb.Coverage:
    """The reply, naming each group's first `uncovered_named` uncovered units."""
    reply = qpb.Coverage(
        campaign_id=r.campaign.campaign_id,
        name=r.campaign.name,
        scope_unit_id=r.scope_unit_id,
        full=r.full,
    )
    if r.as_of is not None:
        reply.as_of.CopyFrom(from_nanos(r.as_of))
    if r.occurred_before is not None:
        reply.occurred_before.CopyFrom(from_nanos(r.occurred_before))
    for t in r.tiers:
        assert t.tier is not None
        reply.tiers.add(
            tier=int(t.tier),
            targets=t.targets,
            covered=t.covered,
            ratio=t.ratio,
            full=t.full,
            uncovered_unit_ids=t.uncovered,
        )
    named = named_per_group(
        [len(g.uncovered) for g in r.groups], uncovered_named, UNCOVERED_NAMED_IN_ALL
    )
    for g in r.groups:
        assert g.tier is not None
        msg = reply.groups.add(
            group_id=g.key,
            name=g.name,
            tier=int(g.tier),
            targets=g.targets,
            covered=g.covered,
            ratio=g.ratio,
            full=g.full,
            uncovered_unit_ids=g.uncovered,
            uncovered_units=[
                qpb.UnitName(unit_id=u, name=r.names.get(u, "")) for u in g.uncovered[:named]
            ],
        )
        _full_at(msg, g)
    for c in r.counties:
        msg = reply.counties.add(
            unit_id=c.key,
            name=c.name,
            targets=c.targets,
            covered=c.covered,
            ratio=c.ratio,
            full=c.full,
        )
        _full_at(msg, c)
    return reply


def _full_at(msg: qpb.GroupCoverage | qpb.CountyCoverage, t: Tally) -> None:
    if t.full_at is not None:
        msg.full_at.CopyFrom(from_nanos(t.full_at))


def statistics_reply(figures: Figures, scope_unit_id: str, area: str) -> qpb.Statistics:
    reply = qpb.Statistics(scope_unit_id=scope_unit_id, area=area)
    for row in figures.rows:
        reply.rows.append(_statistics_row(row))
    if (own := figures.own) is not None:
        reply.own.CopyFrom(_statistics_row(own))
    if figures.previous is not None:
        reply.previous_from.CopyFrom(from_nanos(figures.previous[0]))
        reply.previous_to.CopyFrom(from_nanos(figures.previous[1]))
    return reply


def _statistics_row(row: Row) -> qpb.StatisticsRow:
    return qpb.StatisticsRow(
        key=row.key,
        name=row.name,
        values=row.values,
        events=row.events,
        previous_values=row.previous_values,
        previous_events=row.previous_events,
    )


def group_statistics_reply(
    figures: GroupFigures, campaign_id: str, scope_unit_id: str, area: str
) -> qpb.Statistics:
    reply = qpb.Statistics(campaign_id=campaign_id, scope_unit_id=scope_unit_id, area=area)
    for row in figures.rows:
        reply.rows.append(_group_row(row))
    for row in figures.tiers:
        reply.tiers.append(_group_row(row))
    reply.total.CopyFrom(_group_row(figures.total))
    return reply


def _group_row(row: GroupRow) -> qpb.StatisticsRow:
    return qpb.StatisticsRow(
        key=row.key,
        name=row.name,
        values=row.values,
        events=row.events,
        tier=0 if row.tier is None else int(row.tier),
    )


def unit_reply(unit: Unit, child_count: int) -> qpb.Unit:
    return qpb.Unit(
        unit_id=unit.unit_id,
        parent_id=unit.parent_id,
        level=int(unit.level),
        name=unit.name,
        sample=unit.sample,
        local_code=unit.local_code,
        child_count=child_count,
    )


def campaign_reply(c: Campaign) -> qpb.Campaign:
    reply = qpb.Campaign(campaign_id=c.campaign_id, name=c.name, area=c.area, source=c.source)
    reply.starts_at.CopyFrom(from_nanos(c.starts_at))
    reply.ends_at.CopyFrom(from_nanos(c.ends_at))
    for g in c.groups:
        reply.groups.append(
            epb.SupervisionGroup(
                group_id=g.group_id,
                name=g.name,
                tier=int(g.tier),
                target_unit_ids=g.target_unit_ids,
            )
        )
    return reply


def coverage_explanation_reply(x: CoverageLineage) -> qpb.CoverageExplanation:
    reply = qpb.CoverageExplanation(
        campaign_id=x.campaign_id,
        group_id=x.group_id,
        targets=x.targets,
        covered=x.covered,
        truncated=x.truncated,
    )
    for v in x.visits:
        reply.visits.add(
            group_id=v.group_id,
            unit_id=v.unit_id,
            unit_name=v.unit_name,
            event_id=v.event_id,
            source=v.source,
            seq=v.seq,
            occurred_at=from_nanos(v.occurred_at),
            recorded_at=from_nanos(v.recorded_at),
            partition=v.partition,
            offset=v.offset,
        )
    return reply


def explanation_reply(x: Explanation) -> qpb.Explanation:
    reply = qpb.Explanation(
        metric=x.metric, total=x.total, event_count=x.event_count, truncated=x.truncated
    )
    for c in x.events:
        reply.events.add(
            event_id=c.event_id,
            source=c.source,
            seq=c.seq,
            occurred_at=from_nanos(c.occurred_at),
            recorded_at=from_nanos(c.recorded_at),
            partition=c.partition,
            offset=c.offset,
            unit_id=c.unit_id,
            area=c.area,
            value=c.value,
        )
    return reply


def dead_letters_reply(x: DeadLetters) -> qpb.ListDeadLettersResponse:
    reply = qpb.ListDeadLettersResponse(total=x.total, truncated=x.truncated)
    for d in x.letters:
        letter = reply.dead_letters.add(
            partition=d.partition,
            offset=d.offset,
            event_id=d.event_id,
            source=d.source,
            reason=d.reason,
        )
        if d.recorded_at is not None:
            letter.recorded_at.CopyFrom(from_nanos(d.recorded_at))
    return reply
