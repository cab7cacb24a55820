"""Build protobuf events for the simulated nodes. `seq` and `event_id` are left for the
`SeqBook` to assign when a batch is reserved."""

from __future__ import annotations

from duhub.v1 import events_pb2 as pb

NS = 1_000_000_000


def _event(source: str, at_ns: int) -> pb.Event:
    e = pb.Event(source=source)
    e.occurred_at.seconds, e.occurred_at.nanos = divmod(at_ns, NS)
    return e


def visit(
    source: str,
    at: int,
    unit: str,
    area: str,
    *,
    campaign: str = "",
    group: str = "",
    findings: int = 0,
) -> pb.Event:
    e = _event(source, at)
    e.supervision_visit.CopyFrom(
        pb.SupervisionVisit(
            campaign_id=campaign, group_id=group, unit_id=unit, area=area, findings=findings
        )
    )
    return e


def problem_found(
    source: str, at: int, problem_id: str, unit: str, area: str, campaign: str = ""
) -> pb.Event:
    e = _event(source, at)
    e.problem_found.CopyFrom(
        pb.ProblemFound(problem_id=problem_id, unit_id=unit, area=area, campaign_id=campaign)
    )
    return e


def problem_rectified(source: str, at: int, problem_id: str) -> pb.Event:
    e = _event(source, at)
    e.problem_rectified.problem_id = problem_id
    return e


def accountability(source: str, at: int, unit: str, area: str, persons: int) -> pb.Event:
    e = _event(source, at)
    e.accountability_imposed.CopyFrom(
        pb.AccountabilityImposed(unit_id=unit, area=area, persons=persons)
    )
    return e


def sanction(source: str, at: int, unit: str, area: str, persons: int) -> pb.Event:
    e = _event(source, at)
    e.sanction_imposed.CopyFrom(pb.SanctionImposed(unit_id=unit, area=area, persons=persons))
    return e


def talk(source: str, at: int, unit: str, area: str, kind: int, persons: int) -> pb.Event:
    e = _event(source, at)
    e.talk_held.CopyFrom(pb.TalkHeld(unit_id=unit, area=area, kind=kind, persons=persons))
    return e


def letter(source: str, at: int, letter_id: str, unit: str, area: str) -> pb.Event:
    e = _event(source, at)
    e.recommendation_issued.CopyFrom(
        pb.RecommendationIssued(letter_id=letter_id, unit_id=unit, area=area)
    )
    return e


def regulation(source: str, at: int, unit: str, area: str, count: int) -> pb.Event:
    e = _event(source, at)
    e.regulation_improved.CopyFrom(pb.RegulationImproved(unit_id=unit, area=area, count=count))
    return e


def campaign(
    source: str,
    at: int,
    campaign_id: str,
    name: str,
    area: str,
    starts_at: int,
    ends_at: int,
    groups: list[pb.SupervisionGroup],
) -> pb.Event:
    e = _event(source, at)
    c = e.campaign_launched
    c.campaign_id, c.name, c.area = campaign_id, name, area
    c.starts_at.seconds, c.starts_at.nanos = divmod(starts_at, NS)
    c.ends_at.seconds, c.ends_at.nanos = divmod(ends_at, NS)
    c.groups.extend(groups)
    return e


def occurred_ns(e: pb.Event) -> int:
    return e.occurred_at.seconds * NS + e.occurred_at.nanos
