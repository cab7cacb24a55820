"""Structural checks at the edge: every malformed event raises InvalidEvent naming its field."""

from __future__ import annotations

import pytest

from duhub.convert import InvalidEvent, content_digest, event_from_pb
from duhub.domain import events as ev
from duhub.domain.events import Level, TalkKind, Tier
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import (
    CITY,
    NS,
    YIDU,
    YIDU_T1,
    T,
    accountability,
    at,
    campaign,
    event,
    group,
    letter,
    problem,
    rectify,
    regulation,
    sanction,
    talk,
    ts,
    unit,
    visit,
)


def _no_event_id() -> pb.Event:
    return visit(YIDU, event_id="")


def _nanos_out_of_range() -> pb.Event:
    e = visit(YIDU)
    e.occurred_at.nanos = -1
    return e


def _bad_nanos_start() -> pb.Event:
    e = campaign("c", [group("g", pb.TIER_CITY, YIDU)])
    e.campaign_launched.starts_at.nanos = 1_000_000_000
    return e


GOOD_GROUPS = [group("tf", pb.TIER_TASK_FORCE), group("g1", pb.TIER_CITY, YIDU)]

BAD = [
    # envelope
    ("no event_id", _no_event_id, "event_id"),
    ("space in event_id", lambda: visit(YIDU, event_id="e 1"), "event_id"),
    ("non-ascii event_id", lambda: visit(YIDU, event_id="事件1"), "event_id"),
    ("event_id starting with a dash", lambda: visit(YIDU, event_id="-e1"), "event_id"),
    ("event_id too long", lambda: visit(YIDU, event_id="e" * 129), "event_id"),
    ("no source", lambda: visit(YIDU, source=""), "source"),
    ("slash in source", lambda: visit(YIDU, source="4205/81"), "source"),
    ("seq 0", lambda: visit(YIDU, seq=0), "seq"),
    ("no occurred_at", lambda: visit(YIDU, occurred_at=None), "occurred_at"),
    ("occurred_at at the epoch", lambda: visit(YIDU, occurred_at=0), "occurred_at"),
    (
        "occurred_at in 1999",
        lambda: visit(YIDU, occurred_at=at("1999-12-31T23:59:59")),
        "occurred_at",
    ),
    ("occurred_at in 2100", lambda: visit(YIDU, occurred_at=at("2100-01-01")), "occurred_at"),
    ("occurred_at nanos negative", _nanos_out_of_range, "occurred_at"),
    ("no payload", lambda: event(None), "payload"),
    # org units
    ("level 99", lambda: unit(YIDU_T1, YIDU, 99), "org_unit_registered.level"),
    ("level unspecified", lambda: unit(YIDU_T1, YIDU, 0), "org_unit_registered.level"),
    ("no unit_id", lambda: unit("", YIDU, pb.LEVEL_TOWNSHIP), "org_unit_registered.unit_id"),
    ("bad unit_id", lambda: unit("a/b", YIDU, pb.LEVEL_TOWNSHIP), "org_unit_registered.unit_id"),
    (
        "township without parent",
        lambda: unit(YIDU_T1, "", pb.LEVEL_TOWNSHIP),
        "org_unit_registered.parent_id",
    ),
    (
        "city with parent",
        lambda: unit("420600", CITY, pb.LEVEL_CITY),
        "org_unit_registered.parent_id",
    ),
    (
        "blank name",
        lambda: unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name="   "),
        "org_unit_registered.name",
    ),
    (
        "control character in name",
        lambda: unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name="a\nb"),
        "org_unit_registered.name",
    ),
    (
        "name too long",
        lambda: unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name="名" * 201),
        "org_unit_registered.name",
    ),
    # campaigns
    (
        "ends_at == starts_at",
        lambda: campaign("c", GOOD_GROUPS, at("2022-11-01"), at("2022-11-01")),
        "campaign_launched.ends_at",
    ),
    (
        "ends_at < starts_at",
        lambda: campaign("c", GOOD_GROUPS, at("2022-11-02"), at("2022-11-01")),
        "campaign_launched.ends_at",
    ),
    (
        "no starts_at",
        lambda: campaign("c", GOOD_GROUPS, starts_at=None),
        "campaign_launched.starts_at",
    ),
    ("no ends_at", lambda: campaign("c", GOOD_GROUPS, ends_at=None), "campaign_launched.ends_at"),
    ("starts_at nanos out of range", _bad_nanos_start, "campaign_launched.starts_at"),
    ("no groups", lambda: campaign("c", []), "campaign_launched.groups"),
    (
        "duplicate group ids",
        lambda: campaign(
            "c", [group("g", pb.TIER_CITY, YIDU), group("g", pb.TIER_COUNTY, YIDU_T1)]
        ),
        "campaign_launched.groups[1].group_id",
    ),
    (
        "empty group id",
        lambda: campaign("c", [group("", pb.TIER_CITY, YIDU)]),
        "campaign_launched.groups[0].group_id",
    ),
    (
        "target appears twice",
        lambda: campaign("c", [group("g", pb.TIER_CITY, YIDU, YIDU)]),
        "campaign_launched.groups[0].target_unit_ids",
    ),
    (
        "bad target id",
        lambda: campaign("c", [group("g", pb.TIER_CITY, YIDU, "x y")]),
        "campaign_launched.groups[0].target_unit_ids[1]",
    ),
    (
        "tier 99",
        lambda: campaign("c", [group("tf", pb.TIER_TASK_FORCE), group("g", 99, YIDU)]),
        "campaign_launched.groups[1].tier",
    ),
    (
        "tier unspecified",
        lambda: campaign("c", [group("g", 0, YIDU)]),
        "campaign_launched.groups[0].tier",
    ),
    (
        "campaign without area",
        lambda: campaign("c", GOOD_GROUPS, area=""),
        "campaign_launched.area",
    ),
    ("campaign without id", lambda: campaign("", GOOD_GROUPS), "campaign_launched.campaign_id"),
    (
        "campaign without name",
        lambda: campaign("c", GOOD_GROUPS, name=""),
        "campaign_launched.name",
    ),
    # visits
    ("visit without unit", lambda: visit(""), "supervision_visit.unit_id"),
    ("visit without area", lambda: visit(YIDU, area=""), "supervision_visit.area"),
    ("visit with upper-case area", lambda: visit(YIDU, area="Ecology"), "supervision_visit.area"),
    ("visit with spaced area", lambda: visit(YIDU, area="fishing ban"), "supervision_visit.area"),
    (
        "visit with area starting with a digit",
        lambda: visit(YIDU, area="1ecology"),
        "supervision_visit.area",
    ),
    ("visit with area too long", lambda: visit(YIDU, area="a" * 33), "supervision_visit.area"),
    (
        "campaign visit without group",
        lambda: visit(YIDU, campaign_id="c", group_id=""),
        "supervision_visit.group_id",
    ),
    (
        "visit with bad campaign id",
        lambda: visit(YIDU, campaign_id="c!", group_id="g"),
        "supervision_visit.campaign_id",
    ),
    # problems
    ("problem without id", lambda: problem("", YIDU), "problem_found.problem_id"),
    ("problem without unit", lambda: problem("p", ""), "problem_found.unit_id"),
    ("problem without area", lambda: problem("p", YIDU, area=""), "problem_found.area"),
    ("rectification without problem id", lambda: rectify(""), "problem_rectified.problem_id"),
    # counted facts
    ("accountability persons 0", lambda: accountability(YIDU, 0), "accountability_imposed.persons"),
    (
        "accountability persons huge",
        lambda: accountability(YIDU, 100_001),
        "accountability_imposed.persons",
    ),
    (
        "accountability without area",
        lambda: accountability(YIDU, area=""),
        "accountability_imposed.area",
    ),
    ("accountability without unit", lambda: accountability(""), "accountability_imposed.unit_id"),
    ("sanction persons 0", lambda: sanction(YIDU, 0), "sanction_imposed.persons"),
    ("sanction without area", lambda: sanction(YIDU, area=""), "sanction_imposed.area"),
    ("talk persons 0", lambda: talk(YIDU, 0), "talk_held.persons"),
    ("talk kind 99", lambda: talk(YIDU, kind=99), "talk_held.kind"),
    ("talk kind unspecified", lambda: talk(YIDU, kind=0), "talk_held.kind"),
    ("talk with bad area", lambda: talk(YIDU, area="Bad-Area"), "talk_held.area"),
    ("letter without id", lambda: letter("", YIDU), "recommendation_issued.letter_id"),
    ("letter without area", lambda: letter("l1", YIDU, area=""), "recommendation_issued.area"),
    ("regulation count 0", lambda: regulation(YIDU, 0), "regulation_improved.count"),
    ("regulation without area", lambda: regulation(YIDU, area=""), "regulation_improved.area"),
    # A trailing newline is not a letter or digit ("$" of a regex matches before one): "a1\n"
    # would be another event, problem, letter, unit or area than "a1" that looks the same.
    ("event_id ending in a newline", lambda: visit(YIDU, event_id="e1\n"), "event_id"),
    ("source ending in a newline", lambda: visit(YIDU, source=f"{YIDU}\n"), "source"),
    (
        "unit_id ending in a newline",
        lambda: unit(f"{YIDU_T1}9\n", YIDU, pb.LEVEL_TOWNSHIP),
        "org_unit_registered.unit_id",
    ),
    ("problem_id ending in a newline", lambda: problem("p1\n", YIDU), "problem_found.problem_id"),
    (
        "letter_id ending in a newline",
        lambda: letter("L1\n", YIDU),
        "recommendation_issued.letter_id",
    ),
    (
        "campaign_id ending in a newline",
        lambda: campaign("c\n", GOOD_GROUPS),
        "campaign_launched.campaign_id",
    ),
    (
        "area ending in a newline",
        lambda: accountability(YIDU, area="ecology\n"),
        "accountability_imposed.area",
    ),
    ("talk area ending in a newline", lambda: talk(YIDU, area="grain\n"), "talk_held.area"),
]


@pytest.mark.parametrize(("build", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_event_is_refused_naming_the_field(build, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        event_from_pb(build())
    assert info.value.field == field
    assert info.value.reason.startswith(f"{field}: ")
    assert str(info.value) == info.value.reason


GOOD = [
    ("talk without area", lambda: talk(YIDU, area="")),
    ("visit outside any campaign", lambda: visit(YIDU)),
    ("problem outside any campaign", lambda: problem("p1", YIDU)),
    ("area with digits and underscore", lambda: visit(YIDU, area="fishing_ban2")),
    ("id with . _ : -", lambda: visit(YIDU, event_id="a.b_c:d-e")),
    ("event_id of 128 characters", lambda: visit(YIDU, event_id="e" * 128)),
    ("occurred_at 2000-01-01", lambda: visit(YIDU, occurred_at=at("2000-01-01"))),
    ("occurred_at just before 2100", lambda: visit(YIDU, occurred_at=at("2100-01-01") - 1)),
    ("group without targets", lambda: campaign("c", [group("tf", pb.TIER_TASK_FORCE)])),
    ("city without parent", lambda: unit(CITY, "", pb.LEVEL_CITY)),
    ("persons at the limit", lambda: sanction(YIDU, 100_000)),
]


@pytest.mark.parametrize("build", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_well_formed_event_converts(build) -> None:
    msg = build()
    e = event_from_pb(msg)
    assert e.event_id == msg.event_id
    assert e.source == msg.source
    assert e.seq == msg.seq
    assert e.occurred_at == msg.occurred_at.seconds * NS + msg.occurred_at.nanos
    assert e.digest == content_digest(msg)


def test_fields_map_to_the_domain_event() -> None:
    msg = campaign(
        "vax",
        [
            group("tf", pb.TIER_TASK_FORCE, name="专班"),
            group("c1", pb.TIER_CITY, YIDU, "420582", name="市1"),
        ],
        at("2022-11-01"),
        at("2023-01-01"),
        area="vaccination",
        name="疫苗",
        event_id="c-1",
        source=CITY,
        seq=7,
        occurred_at=T,
    )
    e = event_from_pb(msg)
    assert e.payload == ev.CampaignLaunched(
        "vax",
        "疫苗",
        "vaccination",
        at("2022-11-01"),
        at("2023-01-01"),
        (
            ev.SupervisionGroup("tf", "专班", Tier.TASK_FORCE, ()),
            ev.SupervisionGroup("c1", "市1", Tier.CITY, (YIDU, "420582")),
        ),
    )
    assert (e.event_id, e.source, e.seq, e.occurred_at) == ("c-1", CITY, 7, T)
    assert e.recorded_at == 0

    t = event_from_pb(talk(YIDU_T1, 4, pb.TALK_KIND_ADMONISHMENT, area="grain"))
    assert t.payload == ev.TalkHeld(YIDU_T1, "grain", TalkKind.ADMONISHMENT, 4)
    u = event_from_pb(unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name="镇"))
    assert u.payload == ev.OrgUnitRegistered(YIDU_T1, YIDU, Level.TOWNSHIP, "镇")
    r = event_from_pb(rectify("p9"))
    assert r.payload == ev.ProblemRectified("p9")


def test_digest_ignores_hub_fields_but_not_content() -> None:
    a = accountability(YIDU, 3)
    b = accountability(YIDU, 3)
    b.recorded_at.CopyFrom(ts(at("2023-05-01")))
    b.prev_hash = b"\x01" * 32
    assert content_digest(a) == content_digest(b)
    assert event_from_pb(b).recorded_at == at("2023-05-01")
    for changed in (
        accountability(YIDU, 4),
        accountability(YIDU_T1, 3),
        accountability(YIDU, 3, seq=2),
        accountability(YIDU, 3, occurred_at=T + 1),
        accountability(YIDU, 3, area="grain"),
    ):
        assert content_digest(changed) != content_digest(a)


def test_stamped_is_replace_of_recorded_at_for_every_field() -> None:
    # `Event.stamped` lists the fields by hand (for speed): a field added to Event and
    # forgotten there would be dropped from every ingested event.
    from dataclasses import fields, replace

    e = event_from_pb(visit(YIDU), stored_hash=b"h", partition=3, offset=7)
    assert all(getattr(e, f.name) != f.default for f in fields(e) if f.name != "recorded_at")
    assert e.stamped(123) == replace(e, recorded_at=123)


# An enum field set to a number no value has, and the path to it in the canonical JSON.
UNKNOWN_ENUM = [
    ("org_unit_registered.level", lambda: unit(YIDU_T1, YIDU, 9), ["orgUnitRegistered", "level"]),
    (
        "campaign_launched.groups[0].tier",
        lambda: campaign("c", [group("g", 9, YIDU)]),
        ["campaignLaunched", "groups", 0, "tier"],
    ),
    ("talk_held.kind", lambda: talk(YIDU, kind=9), ["talkHeld", "kind"]),
]


@pytest.mark.parametrize(("field", "build", "path"), UNKNOWN_ENUM, ids=[u[0] for u in UNKNOWN_ENUM])
def test_a_bad_enum_value_is_refused_naming_the_values_a_client_can_write(
    field: str, build, path: list
) -> None:
    """The values the reason lists are the ones a client writes in JSON: each, put in the
    event's JSON in place of the bad value, parses and passes this field (LEVEL_CITY then
    wants no parent: another field)."""
    from google.protobuf import json_format

    with pytest.raises(InvalidEvent) as info:
        event_from_pb(build())
    assert info.value.field == field
    listed = info.value.reason.removeprefix(f"{field}: must be one of ").split(" (got 9)")[0]
    names = listed.split(", ")
    assert len(names) >= 3, info.value.reason
    for name in names:
        doc = json_format.MessageToDict(build())
        *parents, last = path
        spot = doc
        for key in parents:
            spot = spot[key]
        spot[last] = name
        fixed = json_format.ParseDict(doc, pb.Event())
        try:
            event_from_pb(fixed)
        except InvalidEvent as e:
            assert e.field != field, e.reason
