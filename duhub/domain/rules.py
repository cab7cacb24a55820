"""The rules an event must pass against the hub's state: one module for ingest and for the
aggregator (Kafka-direct events). Pure: the state comes in as `Knowledge`, the clock as `now`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from duhub.domain import events as ev
from duhub.domain.events import REFERENCE_SOURCE, Event, Level, Nanos, Tier
from duhub.domain.knowledge import Knowledge
from duhub.domain.model import Unit

# Node clocks drift and links are flaky, but a day ahead is a wrong clock, not a late event.
FUTURE_SLACK_NS = 24 * 3600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # "accepted" | "duplicate" | "rejected"
    field: str = ""
    reason: str = ""
    # Rejected only because something it names is not known (yet): with Kafka's partitions an
    # aggregator may see an event before the one it depends on, and should wait, not reject.
    missing: bool = False


ACCEPTED = Verdict("accepted")
DUPLICATE = Verdict("duplicate")


def rejected(field: str, reason: str, *, missing: bool = False) -> Verdict:
    return Verdict("rejected", field, f"{field}: {reason}", missing)


class _Reject(Exception):
    def __init__(self, field: str, reason: str, *, missing: bool = False) -> None:
        self.verdict = rejected(field, reason, missing=missing)


def check(event: Event, k: Knowledge, now: Nanos, *, allow_reference: bool = False) -> Verdict:
    """Return whether the event is accepted, a duplicate, or rejected (and why)."""
    known = k.event_digest(event.event_id)
    if known is not None:
        if known == event.digest:
            return DUPLICATE
        return rejected("event_id", "already used by an event with other content")
    # Before the seq: a client's `reference` event is refused for its source, whatever the
    # seq (one the hub's numbering took would otherwise be told to pick another seq).
    if event.source == REFERENCE_SOURCE and not allow_reference:
        return rejected("source", "'reference' is reserved for the hub's own reference data")
    owner = k.seq_owner(event.source, event.seq)
    if owner is not None:
        return rejected("seq", f"{event.seq} of source {event.source} already used by {owner}")
    if event.occurred_at > now + FUTURE_SLACK_NS:
        return rejected("occurred_at", "more than 24 hours in the future")
    try:
        authority = _authority(event.source, k)
        _PAYLOAD_RULES[type(event.payload)](event, event.payload, k, authority)
    except _Reject as r:
        return r.verdict
    return ACCEPTED


def _authority(source: str, k: Knowledge) -> Unit | None:
    """Return the unit whose subtree the source may publish for (None: everything, the hub's
    own `reference`, which `check` let through only when allowed)."""
    if source == REFERENCE_SOURCE:
        return None
    unit = k.unit(source)
    if unit is None or unit.level not in (Level.CITY, Level.COUNTY):
        raise _Reject(
            "source",
            f"'{source}' is not a registered city or county-level unit",
            missing=unit is None,
        )
    return unit


def _unit_in(field: str, unit_id: str, k: Knowledge, authority: Unit | None) -> Unit:
    unit = k.unit(unit_id)
    if unit is None or authority is not None and not unit.within(authority.unit_id):
        _not_in(field, unit_id, unit, authority)
    return unit


def _not_in(field: str, unit_id: str, unit: Unit | None, authority: Unit | None) -> NoReturn:
    """Raise the rejection of a unit that is unknown, or outside the source's subtree."""
    if unit is None:
        raise _Reject(field, f"unknown unit '{unit_id}': register it first", missing=True)
    assert authority is not None and not unit.within(authority.unit_id)
    raise _Reject(field, f"unit '{unit_id}' lies outside the source's {authority.unit_id}")


# An id taken is said only to an event the source may publish: checked before the source's
# subtree, "already found" against "outside the source's" told a county's node, at no cost
# (nothing appended), whether another county's problem, letter or unit id existed, and so by
# bisection how many problems another county had found (security probe, 2026-12-07). Now a
# node learns it only by an event of its own subtree, which is accepted when the id is free.
def _org_unit(e: Event, p: ev.OrgUnitRegistered, k: Knowledge, auth: Unit | None) -> None:
    f = "org_unit_registered"
    if p.level == Level.CITY:
        if auth is not None:
            raise _Reject(f"{f}.level", "only the hub's reference data registers a city")
    else:
        parent = _unit_in(f"{f}.parent_id", p.parent_id, k, auth)
        if parent.level != p.level - 1:
            want = Level(p.level - 1).name.lower()
            raise _Reject(f"{f}.parent_id", f"'{p.parent_id}' is not a {want}")
    if k.unit(p.unit_id) is not None:
        raise _Reject(f"{f}.unit_id", f"'{p.unit_id}' is already registered")


# Groups whose work is the city's: a county node neither launches them nor publishes their
# visits. Else a county certified the city's supervision of itself (a city group's visit to
# its own HQ covered it) and launched "city" campaigns its wall screen showed (security probe,
# 2026-12-06). The simulator and the article's city groups publish from the city's node.
CITY_TIERS = (Tier.TASK_FORCE, Tier.CITY)


def _by_county(auth: Unit | None) -> bool:
    return auth is not None and auth.level == Level.COUNTY


def _tier_name(tier: Tier) -> str:
    return tier.name.lower().replace("_", "-")  # task-force, city, county


def _campaign(e: Event, p: ev.CampaignLaunched, k: Knowledge, auth: Unit | None) -> None:
    f = "campaign_launched"
    if k.campaign(p.campaign_id) is not None:
        raise _Reject(f"{f}.campaign_id", f"'{p.campaign_id}' is already launched")
    if _by_county(auth):
        for i, g in enumerate(p.groups):
            if g.tier in CITY_TIERS:
                raise _Reject(
                    f"{f}.groups[{i}].tier",
                    f"a county node launches county groups only: {_tier_name(g.tier)} groups "
                    "are the city node's",
                )
    scope = None if auth is None else auth.unit_id
    for i, g in enumerate(p.groups):
        for j, target in enumerate(g.target_unit_ids):
            # `_unit_in` inline: a campaign names thousands of targets, and their field
            # names are only needed to reject one.
            unit = k.unit(target)
            if unit is None or scope is not None and not unit.within(scope):
                _not_in(f"{f}.groups[{i}].target_unit_ids[{j}]", target, unit, auth)


def _visit(e: Event, p: ev.SupervisionVisit, k: Knowledge, auth: Unit | None) -> None:
    f = "supervision_visit"
    _unit_in("supervision_visit.unit_id", p.unit_id, k, auth)
    if p.campaign_id:
        campaign = k.campaign(p.campaign_id)
        if campaign is None:
            raise _Reject(f"{f}.campaign_id", f"unknown campaign '{p.campaign_id}'", missing=True)
        group = campaign.group(p.group_id)
        if group is None:
            raise _Reject(f"{f}.group_id", f"'{p.group_id}' is not a group of {p.campaign_id}")
        if group.tier in CITY_TIERS and _by_county(auth):
            raise _Reject(
                f"{f}.group_id",
                f"'{p.group_id}' is a {_tier_name(group.tier)} group of {p.campaign_id}: its "
                "visits are the city node's to publish, not a county's",
            )


def _problem_found(e: Event, p: ev.ProblemFound, k: Knowledge, auth: Unit | None) -> None:
    f = "problem_found"
    _unit_in("problem_found.unit_id", p.unit_id, k, auth)
    if k.problem(p.problem_id) is not None:
        raise _Reject(f"{f}.problem_id", f"'{p.problem_id}' was already found")
    if p.campaign_id and k.campaign(p.campaign_id) is None:
        raise _Reject(f"{f}.campaign_id", f"unknown campaign '{p.campaign_id}'", missing=True)


def _problem_rectified(e: Event, p: ev.ProblemRectified, k: Knowledge, auth: Unit | None) -> None:
    f = "problem_rectified.problem_id"
    problem = k.problem(p.problem_id)
    if problem is None and (auth is None or auth.level == Level.CITY):
        # The city's node, which may rectify any of its city's, is told precisely.
        raise _Reject(f, f"unknown problem '{p.problem_id}'", missing=True)
    unit = None if problem is None else k.unit(problem.unit_id)
    if problem is None or unit is None or (auth is not None and not unit.within(auth.unit_id)):
        # Answered alike whether the problem exists nowhere or in another's subtree, and before
        # its state is looked at: another county's node learns neither that it exists, nor
        # whether it is still open, nor where it lies. Only one that does not exist may still
        # come (on another Kafka partition): one of another subtree is not waited for.
        why = f"unknown problem '{p.problem_id}' in the source's {auth.unit_id if auth else ''}"
        raise _Reject(f, why, missing=problem is None)
    if problem.rectified_at is not None:
        raise _Reject(f, f"'{p.problem_id}' is already rectified")
    if e.occurred_at < problem.found_at:
        raise _Reject("occurred_at", "before the problem was found")


def _unit_fact(field: str):
    unit_field = f"{field}.unit_id"  # once, not per event

    def rule(e: Event, p, k: Knowledge, auth: Unit | None) -> None:  # type: ignore[no-untyped-def]
        _unit_in(unit_field, p.unit_id, k, auth)

    return rule


def _recommendation(e: Event, p: ev.RecommendationIssued, k: Knowledge, auth: Unit | None) -> None:
    f = "recommendation_issued"
    _unit_in("recommendation_issued.unit_id", p.unit_id, k, auth)
    if k.has_letter(p.letter_id):
        raise _Reject(f"{f}.letter_id", f"'{p.letter_id}' was already issued")


_PAYLOAD_RULES = {
    ev.OrgUnitRegistered: _org_unit,
    ev.CampaignLaunched: _campaign,
    ev.SupervisionVisit: _visit,
    ev.ProblemFound: _problem_found,
    ev.ProblemRectified: _problem_rectified,
    ev.AccountabilityImposed: _unit_fact("accountability_imposed"),
    ev.SanctionImposed: _unit_fact("sanction_imposed"),
    ev.TalkHeld: _unit_fact("talk_held"),
    ev.RecommendationIssued: _recommendation,
    ev.RegulationImproved: _unit_fact("regulation_improved"),
}
