"""Pure projection: what an accepted event changes, and the working set's state over a base."""

from __future__ import annotations

import copy

import pytest

from duhub.domain import events as ev
from duhub.domain import metrics as m
from duhub.domain import rules
from duhub.domain.events import Event, Level, TalkKind, Tier
from duhub.domain.knowledge import EmptyKnowledge
from duhub.domain.model import Problem
from duhub.projections.effects import (
    CampaignAdded,
    Counted,
    Covered,
    LetterAdded,
    ProblemAdded,
    ProblemClosed,
    Seen,
    UnitAdded,
)
from duhub.projections.fold import fold
from duhub.projections.project import MissingReference, project
from duhub.projections.working_set import WorkingSet
from tests.unit.builders import (
    CITY,
    DANG,
    DAY,
    HOUR,
    NOW,
    YIDU,
    YIDU_T1,
    YIDU_T2,
    YIDU_V1,
    at,
)

STARTS, ENDS = at("2022-11-01"), at("2022-12-01")
REC = NOW  # recorded_at of every event here
_seq = iter(range(1, 10_000))


def E(
    payload,
    *,
    occurred_at: int = at("2022-11-10"),
    source: str = CITY,
    event_id: str | None = None,
    digest: bytes | None = None,
) -> Event:
    seq = next(_seq)
    eid = event_id or f"e{seq}"
    return Event(eid, source, seq, occurred_at, REC, payload, digest or eid.encode())


def world() -> WorkingSet:
    ws = WorkingSet(EmptyKnowledge())
    regs = [
        (CITY, "", Level.CITY),
        (YIDU, CITY, Level.COUNTY),
        (DANG, CITY, Level.COUNTY),
        (YIDU_T1, YIDU, Level.TOWNSHIP),
        (YIDU_T2, YIDU, Level.TOWNSHIP),
        (YIDU_V1, YIDU_T1, Level.VILLAGE),
    ]
    for u, parent, level in regs:
        verdict, _ = fold(
            E(
                ev.OrgUnitRegistered(u, parent, level, u),
                source="reference",
                occurred_at=at("2020-01-01"),
            ),
            ws,
            NOW,
            allow_reference=True,
        )
        assert verdict.kind == "accepted", verdict
    groups = (
        ev.SupervisionGroup("tf", "tf", Tier.TASK_FORCE, ()),
        ev.SupervisionGroup("c1", "c1", Tier.CITY, (YIDU, DANG)),
        ev.SupervisionGroup("n1", "n1", Tier.COUNTY, (YIDU_T1,)),
    )
    verdict, _ = fold(
        E(ev.CampaignLaunched("vax", "vax", "vaccination", STARTS, ENDS, groups)), ws, NOW
    )
    assert verdict.kind == "accepted"
    return ws


def counted(effects) -> list[tuple]:
    return [(c.path, c.metric, c.area, c.at, c.value) for c in effects if isinstance(c, Counted)]


def covered(effects) -> list[tuple]:
    return [(c.campaign_id, c.group_id, c.unit_id, c.at) for c in effects if isinstance(c, Covered)]


def test_registration_extends_the_parent_path() -> None:
    ws = world()
    assert ws.unit(YIDU_V1).path == (CITY, YIDU, YIDU_T1, YIDU_V1)
    assert ws.unit(CITY).path == (CITY,)
    assert ws.unit(YIDU_V1).county_id == YIDU
    assert ws.unit(YIDU_V1).within(YIDU) and not ws.unit(YIDU_V1).within(DANG)
    e = E(ev.OrgUnitRegistered("420581101202", YIDU_T1, Level.VILLAGE, "v2"), source=YIDU)
    effects = project(e, ws)
    seen = effects[0]
    assert isinstance(seen, Seen)
    assert (seen.event_id, seen.digest, seen.source, seen.seq, seen.recorded_at) == (
        e.event_id,
        e.digest,
        YIDU,
        e.seq,
        REC,
    )
    (added,) = [x for x in effects if isinstance(x, UnitAdded)]
    assert added.unit.path == (CITY, YIDU, YIDU_T1, "420581101202")
    assert counted(effects) == []


@pytest.mark.parametrize(
    ("campaign_id", "group_id", "unit_id", "when", "covers"),
    [
        ("vax", "c1", YIDU, STARTS, True),  # the window opens at starts_at
        ("vax", "c1", YIDU, ENDS - 1, True),
        ("vax", "c1", YIDU, ENDS, False),  # and is closed at ends_at
        ("vax", "c1", YIDU, STARTS - 1, False),
        ("vax", "c1", YIDU_T1, STARTS + DAY, False),  # not among c1's targets
        ("vax", "n1", YIDU_T1, STARTS + DAY, True),
        ("vax", "tf", YIDU, STARTS + DAY, False),  # the task force has no targets
        ("", "", YIDU, STARTS + DAY, False),  # outside any campaign
    ],
)
def test_visit_counts_always_and_covers_only_inside_window_and_targets(
    campaign_id: str, group_id: str, unit_id: str, when: int, covers: bool
) -> None:
    ws = world()
    e = E(ev.SupervisionVisit(campaign_id, group_id, unit_id, "vaccination", 2), occurred_at=when)
    verdict, effects = fold(e, ws, NOW)
    assert verdict.kind == "accepted"
    assert counted(effects) == [(ws.unit(unit_id).path, m.VISITS, "vaccination", when, 1)]
    assert covered(effects) == ([(campaign_id, group_id, unit_id, when)] if covers else [])


def test_rectification_counts_for_the_problem_unit_and_area_at_its_own_time() -> None:
    ws = world()
    found_at, fixed_at = at("2022-11-05T10:00:00"), at("2022-12-20T08:30:00")
    _, f = fold(
        E(ev.ProblemFound("p1", YIDU_V1, "ecology", "vax"), source=YIDU, occurred_at=found_at),
        ws,
        NOW,
    )
    assert [x.problem for x in f if isinstance(x, ProblemAdded)] == [
        Problem("p1", YIDU_V1, "ecology", found_at)
    ]
    assert counted(f) == [(ws.unit(YIDU_V1).path, m.PROBLEMS_FOUND, "ecology", found_at, 1)]
    verdict, r = fold(E(ev.ProblemRectified("p1"), source=CITY, occurred_at=fixed_at), ws, NOW)
    assert verdict.kind == "accepted"
    assert [(x.problem_id, x.at) for x in r if isinstance(x, ProblemClosed)] == [("p1", fixed_at)]
    assert counted(r) == [(ws.unit(YIDU_V1).path, m.PROBLEMS_RECTIFIED, "ecology", fixed_at, 1)]
    assert ws.problem("p1").rectified_at == fixed_at
    again, nothing = fold(E(ev.ProblemRectified("p1"), occurred_at=fixed_at + HOUR), ws, NOW)
    assert (again.kind, again.field, nothing) == ("rejected", "problem_rectified.problem_id", [])


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (ev.AccountabilityImposed(YIDU_T1, "grain", 3), [(m.ACCOUNTABILITY_PERSONS, "grain", 3)]),
        (ev.SanctionImposed(YIDU_T1, "grain", 4), [(m.SANCTIONED_PERSONS, "grain", 4)]),
        (
            ev.TalkHeld(YIDU_T1, "", TalkKind.TOP_LEADER, 2),
            [(m.TALK_PERSONS, "", 2), ("talk_persons_top_leader", "", 2)],
        ),
        (
            ev.TalkHeld(YIDU_T1, "grain", TalkKind.ADMONISHMENT, 5),
            [(m.TALK_PERSONS, "grain", 5), ("talk_persons_admonishment", "grain", 5)],
        ),
        (
            ev.TalkHeld(YIDU_T1, "grain", TalkKind.OTHER, 1),
            [(m.TALK_PERSONS, "grain", 1), ("talk_persons_other", "grain", 1)],
        ),
        (ev.RecommendationIssued("L1", YIDU_T1, "grain"), [(m.RECOMMENDATIONS, "grain", 1)]),
        (ev.RegulationImproved(YIDU_T1, "grain", 6), [(m.REGULATIONS_IMPROVED, "grain", 6)]),
    ],
)
def test_counted_facts(payload, expected: list[tuple[str, str, int]]) -> None:
    ws = world()
    when = at("2022-11-07T13:14:15")
    verdict, effects = fold(E(payload, source=YIDU, occurred_at=when), ws, NOW)
    assert verdict.kind == "accepted"
    path = (CITY, YIDU, YIDU_T1)
    assert counted(effects) == [(path, metric, area, when, v) for metric, area, v in expected]
    assert all(
        c.event_id == effects[0].event_id and c.recorded_at == REC
        for c in effects
        if isinstance(c, Counted)
    )


def test_letter_is_remembered() -> None:
    ws = world()
    _, effects = fold(E(ev.RecommendationIssued("L1", YIDU_T1, "grain"), source=YIDU), ws, NOW)
    assert LetterAdded("L1") in effects
    assert ws.has_letter("L1") and not ws.has_letter("L2")
    verdict, _ = fold(E(ev.RecommendationIssued("L1", YIDU_T2, "grain"), source=YIDU), ws, NOW)
    assert (verdict.kind, verdict.field) == ("rejected", "recommendation_issued.letter_id")


def test_campaign_added() -> None:
    ws = world()
    c = ws.campaign("vax")
    assert (c.starts_at, c.ends_at, c.source, c.recorded_at) == (STARTS, ENDS, CITY, REC)
    assert [g.group_id for g in c.groups] == ["tf", "c1", "n1"]
    e = E(ev.CampaignLaunched("flu", "flu", "epidemic", STARTS, ENDS, ()))
    assert any(
        isinstance(x, CampaignAdded) and x.campaign.campaign_id == "flu" for x in project(e, ws)
    )


def test_rejected_and_duplicate_events_change_nothing() -> None:
    ws = world()
    e = E(ev.SanctionImposed(YIDU_T1, "grain", 1), source=YIDU, event_id="s1", digest=b"d1")
    assert fold(e, ws, NOW)[0].kind == "accepted"
    state = (dict(ws.units), dict(ws.problems), set(ws.letters), dict(ws.digests), dict(ws.seqs))
    assert fold(e, ws, NOW) == (rules.DUPLICATE, [])
    other = Event("s1", YIDU, 999, e.occurred_at, REC, e.payload, b"other")
    assert fold(other, ws, NOW)[0].field == "event_id"
    bad = E(ev.ProblemFound("p9", "nowhere", "grain", ""), source=YIDU)
    verdict, effects = fold(bad, ws, NOW)
    assert (verdict.kind, verdict.field, effects) == ("rejected", "problem_found.unit_id", [])
    assert (
        dict(ws.units),
        dict(ws.problems),
        set(ws.letters),
        dict(ws.digests),
        dict(ws.seqs),
    ) == state
    assert ws.event_digest(bad.event_id) is None and ws.problem("p9") is None


def test_working_set_layers_over_its_base() -> None:
    base = world()
    pf = E(ev.ProblemFound("p1", YIDU_T1, "grain", ""), source=YIDU, event_id="pf", digest=b"pf")
    assert fold(pf, base, NOW)[0].kind == "accepted"
    top = WorkingSet(base)
    assert top.unit(YIDU_V1) == base.unit(YIDU_V1)
    assert top.event_digest("pf") == b"pf"
    assert top.seq_owner(YIDU, pf.seq) == "pf"
    assert top.seq_owner(DANG, pf.seq) is None
    verdict, _ = fold(
        E(ev.ProblemRectified("p1"), source=YIDU, occurred_at=at("2022-11-11")), top, NOW
    )
    assert verdict.kind == "accepted"
    # The top knows it is rectified; the base is untouched.
    assert top.problem("p1").rectified_at == at("2022-11-11")
    assert base.problem("p1").rectified_at is None
    assert top.problems.keys() == {"p1"} and "p1" in base.problems


def test_working_set_keeps_the_units_its_base_found_but_not_their_absence() -> None:
    # The top keeps the base's units and campaigns once found (they never change), but not
    # their absence: a unit the base registers later is found through the top.
    base = world()
    top = WorkingSet(base)
    assert top.unit("420581-new") is None and top.campaign("later") is None
    reg = E(ev.OrgUnitRegistered("420581-new", YIDU_T1, Level.VILLAGE, "new"), source=YIDU)
    assert fold(reg, base, NOW)[0].kind == "accepted"
    groups = (ev.SupervisionGroup("c1", "c1", Tier.CITY, (YIDU,)),)
    launch = E(ev.CampaignLaunched("later", "later", "grain", STARTS, ENDS, groups))
    assert fold(launch, base, NOW)[0].kind == "accepted"
    assert top.unit("420581-new").path == (CITY, YIDU, YIDU_T1, "420581-new")
    assert top.campaign("later").campaign_id == "later"
    assert top.unit(YIDU) is base.unit(YIDU)


def test_project_refuses_what_the_rules_never_checked() -> None:
    ws = world()
    with pytest.raises(MissingReference):
        project(E(ev.AccountabilityImposed("nowhere", "grain", 1)), ws)
    with pytest.raises(MissingReference):
        project(E(ev.ProblemRectified("never-found")), ws)


def _state(ws: WorkingSet) -> tuple:
    return (ws.units, ws.campaigns, ws.problems, ws.letters, ws.digests, ws.seqs, ws.heads)


def test_without_rollups_the_same_state_is_kept_and_only_the_counts_left_out() -> None:
    # Ingest folds with rollups=False: its next checks must see exactly what the aggregator's
    # do, or it would accept (or refuse) differently.
    found_at = at("2022-11-05")
    events = [
        E(ev.OrgUnitRegistered("420581101202", YIDU_T1, Level.VILLAGE, "v2"), source=YIDU),
        E(ev.CampaignLaunched("flu", "flu", "epidemic", STARTS, ENDS, ())),
        E(ev.SupervisionVisit("vax", "c1", YIDU, "vaccination", 2), occurred_at=STARTS + DAY),
        E(ev.ProblemFound("p1", YIDU_V1, "ecology", "vax"), source=YIDU, occurred_at=found_at),
        E(ev.ProblemRectified("p1"), occurred_at=found_at + DAY),
        E(ev.AccountabilityImposed(YIDU_T1, "grain", 3), source=YIDU),
        E(ev.SanctionImposed(YIDU_T1, "grain", 4), source=YIDU),
        E(ev.TalkHeld(YIDU_T1, "grain", TalkKind.ADMONISHMENT, 5), source=YIDU),
        E(ev.RecommendationIssued("L1", YIDU_T1, "grain"), source=YIDU),
        E(ev.RegulationImproved(YIDU_T1, "grain", 6), source=YIDU),
    ]
    full = world()
    lean = copy.deepcopy(full)  # (a second world() would draw other ids)
    for e in events:
        v1, with_rollups = fold(e, full, NOW)
        v2, without = fold(e, lean, NOW, rollups=False)
        assert v1 == v2 and v1.kind == "accepted", (e, v1, v2)
        assert without == [x for x in with_rollups if not isinstance(x, Counted | Covered)]
        assert _state(lean) == _state(full)
    assert counted(with_rollups) and not counted(without)  # the last one counts something
    assert lean.problem("p1").rectified_at == found_at + DAY and lean.has_letter("L1")
