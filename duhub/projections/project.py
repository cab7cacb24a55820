"""Turn one accepted event into the effects it has on the read model."""

from __future__ import annotations

from duhub.domain import events as ev
from duhub.domain import metrics as m
from duhub.domain.events import Event
from duhub.domain.knowledge import Knowledge
from duhub.domain.model import Campaign, Problem, Unit
from duhub.projections.effects import (
    CampaignAdded,
    Counted,
    Covered,
    Effect,
    LetterAdded,
    ProblemAdded,
    ProblemClosed,
    Seen,
    UnitAdded,
)


class MissingReference(LookupError):
    """The event names something the state does not hold: it was not checked by the rules."""


def project(event: Event, k: Knowledge, *, rollups: bool = True) -> list[Effect]:
    """Return the effects of an event the rules accepted against the same state `k`.

    `rollups=False` leaves out what only the rollups take (Counted, Covered): ingest keeps
    the state its checks need and nothing else, and building them cost it a tenth of its time.
    """
    out: list[Effect] = [
        Seen(
            event.event_id,
            event.digest,
            event.source,
            event.seq,
            event.recorded_at,
            event.occurred_at,
            event.stored_hash,
            event.partition,
            event.offset,
        )
    ]
    p = event.payload
    if isinstance(p, ev.OrgUnitRegistered):
        parent_path = _unit(k, p.parent_id).path if p.parent_id else ()
        unit = Unit(
            p.unit_id,
            p.parent_id,
            p.level,
            p.name,
            (*parent_path, p.unit_id),
            p.sample,
            p.local_code,
        )
        out.append(UnitAdded(unit, event.recorded_at))
    elif isinstance(p, ev.CampaignLaunched):
        out.append(
            CampaignAdded(
                Campaign(
                    p.campaign_id,
                    p.name,
                    p.area,
                    p.starts_at,
                    p.ends_at,
                    p.groups,
                    event.source,
                    event.recorded_at,
                )
            )
        )
    elif isinstance(p, ev.ProblemFound):
        out.append(
            ProblemAdded(
                Problem(p.problem_id, p.unit_id, p.area, event.occurred_at), event.event_id
            )
        )
    elif isinstance(p, ev.ProblemRectified):
        _problem(k, p.problem_id)
        out.append(
            ProblemClosed(p.problem_id, event.occurred_at, event.event_id, event.recorded_at)
        )
    elif isinstance(p, ev.RecommendationIssued):
        out.append(LetterAdded(p.letter_id))
    if rollups:
        out += _figures(event, k)
    return out


def _figures(event: Event, k: Knowledge) -> list[Effect]:
    """The effects only the rollups take: counts, and coverage marks."""
    p = event.payload
    if isinstance(p, ev.SupervisionVisit):
        visit = _count(event, k, p.unit_id, m.VISITS, p.area, 1)
        if p.campaign_id:  # the rules made sure the group is one of the campaign's
            visit.campaign_id, visit.group_id = p.campaign_id, p.group_id
        out: list[Effect] = [visit]
        campaign = k.campaign(p.campaign_id) if p.campaign_id else None
        if campaign is not None and campaign.covers(p.group_id, p.unit_id, event.occurred_at):
            out.append(
                Covered(
                    p.campaign_id,
                    p.group_id,
                    p.unit_id,
                    event.occurred_at,
                    event.recorded_at,
                    event.event_id,
                    _unit(k, p.unit_id).county_id or "",
                )
            )
        return out
    if isinstance(p, ev.ProblemFound):
        return [_count(event, k, p.unit_id, m.PROBLEMS_FOUND, p.area, 1)]
    if isinstance(p, ev.ProblemRectified):
        # Counted for the unit and area of the problem it closes, at its own event time.
        problem = _problem(k, p.problem_id)
        return [_count(event, k, problem.unit_id, m.PROBLEMS_RECTIFIED, problem.area, 1)]
    if isinstance(p, ev.AccountabilityImposed):
        return [_count(event, k, p.unit_id, m.ACCOUNTABILITY_PERSONS, p.area, p.persons)]
    if isinstance(p, ev.SanctionImposed):
        return [_count(event, k, p.unit_id, m.SANCTIONED_PERSONS, p.area, p.persons)]
    if isinstance(p, ev.TalkHeld):
        return [
            _count(event, k, p.unit_id, m.TALK_PERSONS, p.area, p.persons),
            _count(event, k, p.unit_id, m.TALK_PERSONS_BY_KIND[p.kind], p.area, p.persons),
        ]
    if isinstance(p, ev.RecommendationIssued):
        return [_count(event, k, p.unit_id, m.RECOMMENDATIONS, p.area, 1)]
    if isinstance(p, ev.RegulationImproved):
        return [_count(event, k, p.unit_id, m.REGULATIONS_IMPROVED, p.area, p.count)]
    return []


def _problem(k: Knowledge, problem_id: str) -> Problem:
    problem = k.problem(problem_id)
    if problem is None:
        raise MissingReference(f"problem {problem_id}")
    return problem


def _unit(k: Knowledge, unit_id: str) -> Unit:
    unit = k.unit(unit_id)
    if unit is None:
        raise MissingReference(f"unit {unit_id}")
    return unit


def _count(event: Event, k: Knowledge, unit_id: str, metric: str, area: str, value: int) -> Counted:
    return Counted(
        _unit(k, unit_id).path,
        metric,
        area,
        event.occurred_at,
        value,
        event.event_id,
        event.recorded_at,
    )
