"""Ingest validation against the hub's state, through the real Ingestor (EmbeddedLog + SQLite).

Every case runs twice: once with the setup events applied to the read model (the rules ask
SQLite) and once with them only in the ingestor's pending tail (the aggregator has not run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from duhub.domain import rules
from duhub.domain.events import Event, Level, ProblemRectified, SupervisionVisit
from duhub.domain.knowledge import EmptyKnowledge
from duhub.domain.model import Problem, Unit
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from services.ingest.ingestor import Ingestor
from tests.unit.builders import (
    CITY,
    DANG,
    DANG_T1,
    DANG_V1,
    DAY,
    HOUR,
    NOW,
    YIDU,
    YIDU_T1,
    YIDU_T2,
    YIDU_V1,
    Clock,
    Pipeline,
    T,
    accountability,
    at,
    campaign,
    group,
    hierarchy,
    kinds,
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

VAX_GROUPS = [
    group("tf", pb.TIER_TASK_FORCE),
    group("c1", pb.TIER_CITY, YIDU, DANG),
    group("n1", pb.TIER_COUNTY, YIDU_T1, YIDU_T2),
]


def setup_events() -> list[pb.Event]:
    return [
        campaign("vax", VAX_GROUPS, event_id="c-vax", source=CITY, seq=1, occurred_at=T),
        problem("p1", YIDU_V1, event_id="p1", source=YIDU, seq=1, occurred_at=T),
        problem("p2", YIDU_T1, event_id="p2", source=YIDU, seq=2, occurred_at=T),
        rectify("p2", event_id="r2", source=YIDU, seq=3, occurred_at=T + HOUR),
        letter("L1", YIDU_T1, event_id="l1", source=YIDU, seq=4),
        accountability(YIDU_T1, 2, event_id="a1", source=YIDU, seq=5),
    ]


@pytest.fixture(params=["applied", "pending"])
def hub(request) -> Iterator[Pipeline]:
    p = Pipeline.open()
    assert set(kinds(p.publish(hierarchy(), allow_reference=True))) == {"accepted"}
    assert set(kinds(p.publish(setup_events()))) == {"accepted"}
    if request.param == "applied":
        p.tailer.catch_up()
    yield p
    p.close()


def fresh(build: Callable[..., pb.Event], *args, **kw) -> Callable[[], pb.Event]:
    """Defer building, with an unused event id and seq unless given."""
    kw.setdefault("event_id", "new-1")
    kw.setdefault("seq", 100)
    return lambda: build(*args, **kw)


def _resent_with_hub_fields() -> pb.Event:
    e = accountability(YIDU_T1, 2, event_id="a1", source=YIDU, seq=5)
    e.recorded_at.CopyFrom(ts(at("2030-01-01")))
    e.prev_hash = b"x" * 32
    return e


REJECTED = [
    # identity
    (
        "event_id reused with other content",
        lambda: accountability(YIDU_T1, 3, event_id="a1", source=YIDU, seq=5),
        "event_id",
    ),
    (
        "event_id reused with another seq",
        lambda: accountability(YIDU_T1, 2, event_id="a1", source=YIDU, seq=6),
        "event_id",
    ),
    (
        "(source, seq) reused by another event_id",
        fresh(accountability, YIDU_T1, 2, source=YIDU, seq=5),
        "seq",
    ),
    # authority
    ("source not registered", fresh(visit, YIDU, source="420599"), "source"),
    ("source is a township", fresh(visit, YIDU_T1, source=YIDU_T1), "source"),
    ("'reference' source from a client", fresh(visit, YIDU, source="reference"), "source"),
    # Before, one that reused a seq of the hub's reference data was told "seq: 1 of source
    # reference already used by ref:420500", as if another seq would do.
    (
        "'reference' source from a client, on a seq the hub took",
        fresh(visit, YIDU, source="reference", seq=1),
        "source",
    ),
    ("unknown unit", fresh(visit, "420581999", source=YIDU), "supervision_visit.unit_id"),
    (
        "unit outside the source's county",
        fresh(visit, DANG_T1, source=YIDU),
        "supervision_visit.unit_id",
    ),
    (
        "the county itself of another source",
        fresh(visit, DANG, source=YIDU),
        "supervision_visit.unit_id",
    ),
    ("the city from a county", fresh(visit, CITY, source=YIDU), "supervision_visit.unit_id"),
    (
        "accountability for an unknown unit",
        fresh(accountability, "x1", source=CITY),
        "accountability_imposed.unit_id",
    ),
    (
        "sanction outside the county",
        fresh(sanction, DANG_V1, source=YIDU),
        "sanction_imposed.unit_id",
    ),
    ("talk outside the county", fresh(talk, DANG_V1, source=YIDU), "talk_held.unit_id"),
    (
        "regulation for an unknown unit",
        fresh(regulation, "x1", source=YIDU),
        "regulation_improved.unit_id",
    ),
    (
        "letter outside the county",
        fresh(letter, "L2", DANG, source=YIDU),
        "recommendation_issued.unit_id",
    ),
    (
        "problem outside the county",
        fresh(problem, "p9", DANG_T1, source=YIDU),
        "problem_found.unit_id",
    ),
    # time
    (
        "more than 24 hours in the future",
        fresh(visit, YIDU, occurred_at=NOW + DAY + 1),
        "occurred_at",
    ),
    # campaigns and visits
    (
        "visit naming an unknown campaign",
        fresh(visit, YIDU, "flu", "c1"),
        "supervision_visit.campaign_id",
    ),
    (
        "visit naming a group not in the campaign",
        fresh(visit, YIDU, "vax", "n9"),
        "supervision_visit.group_id",
    ),
    ("campaign id reused", fresh(campaign, "vax", VAX_GROUPS), "campaign_launched.campaign_id"),
    (
        "campaign with an unknown target",
        fresh(
            campaign, "flu", [group("tf", pb.TIER_TASK_FORCE), group("g", pb.TIER_CITY, YIDU, "x9")]
        ),
        "campaign_launched.groups[1].target_unit_ids[1]",
    ),
    (
        "county campaign targeting another county",
        fresh(campaign, "flu", [group("g", pb.TIER_COUNTY, YIDU_T1, DANG_T1)], source=YIDU),
        "campaign_launched.groups[0].target_unit_ids[1]",
    ),
    # A county certified the city's supervision of itself, and launched "city" campaigns
    # (security probe): the city's groups are the city node's.
    (
        "a county publishing a city group's visit to its own HQ",
        fresh(visit, YIDU, "vax", "c1", source=YIDU),
        "supervision_visit.group_id",
    ),
    (
        "a county publishing the task force's visit",
        fresh(visit, YIDU_T1, "vax", "tf", source=YIDU),
        "supervision_visit.group_id",
    ),
    (
        "a county launching a campaign with a city group",
        fresh(
            campaign,
            "flu",
            [group("n", pb.TIER_COUNTY, YIDU_T1), group("g", pb.TIER_CITY, YIDU)],
            source=YIDU,
        ),
        "campaign_launched.groups[1].tier",
    ),
    (
        "a county launching a campaign with a task force",
        fresh(campaign, "flu", [group("tf", pb.TIER_TASK_FORCE)], source=YIDU),
        "campaign_launched.groups[0].tier",
    ),
    # problems
    ("problem found twice", fresh(problem, "p1", YIDU_V1, source=YIDU), "problem_found.problem_id"),
    (
        "problem naming an unknown campaign",
        fresh(problem, "p9", YIDU, campaign_id="flu"),
        "problem_found.campaign_id",
    ),
    (
        "rectifying an unknown problem",
        fresh(rectify, "p9", source=YIDU),
        "problem_rectified.problem_id",
    ),
    (
        "rectifying twice",
        fresh(rectify, "p2", source=YIDU, occurred_at=T + 2 * HOUR),
        "problem_rectified.problem_id",
    ),
    (
        "rectification before the problem was found",
        fresh(rectify, "p1", source=YIDU, occurred_at=T - 1),
        "occurred_at",
    ),
    (
        "rectifying another county's problem",
        fresh(rectify, "p1", source=DANG, occurred_at=T + HOUR),
        "problem_rectified.problem_id",
    ),
    (
        "duplicate letter_id",
        fresh(letter, "L1", YIDU_T2, source=YIDU),
        "recommendation_issued.letter_id",
    ),
    # registrations
    (
        "township under a village",
        fresh(unit, "420581101299", YIDU_V1, pb.LEVEL_TOWNSHIP, source=YIDU),
        "org_unit_registered.parent_id",
    ),
    (
        "village under a county",
        fresh(unit, "420581999", YIDU, pb.LEVEL_VILLAGE, source=YIDU),
        "org_unit_registered.parent_id",
    ),
    (
        "county under a township",
        fresh(unit, "420589", YIDU_T1, pb.LEVEL_COUNTY, source=CITY),
        "org_unit_registered.parent_id",
    ),
    (
        "unit under an unknown parent",
        fresh(unit, "420581103", "420581199", pb.LEVEL_VILLAGE, source=YIDU),
        "org_unit_registered.parent_id",
    ),
    (
        "unit under another county's township",
        fresh(unit, "420582101299", DANG_T1, pb.LEVEL_VILLAGE, source=YIDU),
        "org_unit_registered.parent_id",
    ),
    (
        "county registered by a county",
        fresh(unit, "420583", CITY, pb.LEVEL_COUNTY, source=YIDU),
        "org_unit_registered.parent_id",
    ),
    (
        "unit already registered",
        fresh(unit, YIDU_T2, YIDU, pb.LEVEL_TOWNSHIP, source=YIDU),
        "org_unit_registered.unit_id",
    ),
    (
        "a city registered by the city",
        fresh(unit, "420600", "", pb.LEVEL_CITY, source=CITY),
        "org_unit_registered.level",
    ),
    # structural failures reach the client the same way
    (
        "level 99 through ingest",
        fresh(unit, "420581103", YIDU, 99, source=YIDU),
        "org_unit_registered.level",
    ),
    ("persons 0 through ingest", fresh(sanction, YIDU, 0, source=YIDU), "sanction_imposed.persons"),
    # Not a second event, problem or letter beside "a1", "p1", "L1" (counted twice), nor an
    # area of its own beside "ecology" (missing from its figures)
    (
        "a1 resent with a newline after its id",
        lambda: accountability(YIDU_T1, 2, event_id="a1\n", source=YIDU, seq=50),
        "event_id",
    ),
    (
        "p1 found again with a newline after its id",
        fresh(problem, "p1\n", YIDU_V1, source=YIDU),
        "problem_found.problem_id",
    ),
    (
        "L1 issued again with a newline after its id",
        fresh(letter, "L1\n", YIDU_T1, source=YIDU),
        "recommendation_issued.letter_id",
    ),
    (
        "an area with a newline after it",
        fresh(accountability, YIDU_T1, 2, area="ecology\n", source=YIDU),
        "accountability_imposed.area",
    ),
]


@pytest.mark.parametrize(
    ("build", "field"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED]
)
def test_rejected_naming_the_field_and_changing_nothing(hub: Pipeline, build, field: str) -> None:
    end = hub.end()
    msg = build()
    (r,) = hub.publish([msg])
    assert r.result == ipb.RESULT_REJECTED
    assert r.event_id == msg.event_id
    assert r.field == field
    assert r.reason.startswith(f"{field}: ")
    assert hub.end() == end
    # Nothing was taken: the same event sent again gets the same answer, not DUPLICATE.
    (again,) = hub.publish([msg])
    assert (again.result, again.field) == (ipb.RESULT_REJECTED, field)


DUPLICATES = [
    ("same event resent", lambda: accountability(YIDU_T1, 2, event_id="a1", source=YIDU, seq=5)),
    ("resent with hub-set fields filled in", _resent_with_hub_fields),
    (
        "campaign resent",
        lambda: campaign("vax", VAX_GROUPS, event_id="c-vax", source=CITY, seq=1, occurred_at=T),
    ),
    (
        "rectification resent",
        lambda: rectify("p2", event_id="r2", source=YIDU, seq=3, occurred_at=T + HOUR),
    ),
    ("letter resent", lambda: letter("L1", YIDU_T1, event_id="l1", source=YIDU, seq=4)),
]


@pytest.mark.parametrize("build", [c[1] for c in DUPLICATES], ids=[c[0] for c in DUPLICATES])
def test_duplicate_is_acknowledged_not_applied(hub: Pipeline, build) -> None:
    end = hub.end()
    (r,) = hub.publish([build()])
    assert r.result == ipb.RESULT_DUPLICATE
    assert (r.field, r.reason) == ("", "")
    assert hub.end() == end


ACCEPTED = [
    (
        "visit at the campaign's end (outside the window)",
        fresh(visit, YIDU, "vax", "c1", occurred_at=at("2023-01-01")),
    ),
    ("visit to a unit not among the group's targets", fresh(visit, YIDU_V1, "vax", "c1")),
    ("visit outside any campaign", fresh(visit, DANG_T1, source=DANG)),
    ("a county's own group's visit", fresh(visit, YIDU_T1, "vax", "n1", source=YIDU)),
    ("the city publishing a city group's visit", fresh(visit, YIDU, "vax", "c1", source=CITY)),
    (
        "a county launching a campaign of county groups",
        fresh(campaign, "flu", [group("n", pb.TIER_COUNTY, YIDU_T1)], source=YIDU),
    ),
    ("talk with an empty area", fresh(talk, YIDU_T1, 3, area="", source=YIDU)),
    ("the city publishing for a village", fresh(sanction, DANG_V1, 2, source=CITY)),
    ("a county publishing for itself", fresh(regulation, YIDU, 1, source=YIDU)),
    (
        "rectification at the very time the problem was found",
        fresh(rectify, "p1", source=YIDU, occurred_at=T),
    ),
    ("rectification by the city", fresh(rectify, "p1", source=CITY, occurred_at=T + DAY)),
    ("occurred_at exactly 24 hours ahead", fresh(visit, YIDU, occurred_at=NOW + DAY)),
    ("a seq gap", fresh(visit, YIDU, source=YIDU, seq=10_000)),
    ("the same seq from another source", fresh(visit, DANG, source=DANG, seq=5)),
    (
        "a village registered by its county",
        fresh(unit, "420581102201", YIDU_T2, pb.LEVEL_VILLAGE, source=YIDU),
    ),
    ("a county registered by the city", fresh(unit, "420583", CITY, pb.LEVEL_COUNTY)),
    ("a problem in a known campaign", fresh(problem, "p9", YIDU, campaign_id="vax", source=YIDU)),
    (
        "a county campaign inside its county",
        fresh(campaign, "yidu-1", [group("g", pb.TIER_COUNTY, YIDU_T1, YIDU_V1)], source=YIDU),
    ),
]


@pytest.mark.parametrize("build", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_is_appended(hub: Pipeline, build) -> None:
    end = hub.end()
    (r,) = hub.publish([build()])
    assert r.result == ipb.RESULT_ACCEPTED, r.reason
    assert (r.partition, r.offset) == (0, end)
    assert hub.end() == end + 1
    (again,) = hub.publish([build()])
    assert again.result == ipb.RESULT_DUPLICATE
    assert hub.end() == end + 1


def test_rejected_event_does_not_affect_the_rest_of_its_batch(hub: Pipeline) -> None:
    end = hub.end()
    batch = [
        accountability(YIDU_T2, 5, event_id="b1", source=YIDU, seq=10),
        accountability(DANG_T1, 7, event_id="b2", source=YIDU, seq=11),  # outside YIDU
        problem("p7", YIDU_T2, event_id="b3", source=YIDU, seq=12),
        rectify("p7", event_id="b4", source=YIDU, seq=13, occurred_at=T + HOUR),  # same batch
        rectify("p8", event_id="b5", source=YIDU, seq=14),  # unknown problem
        accountability(YIDU_T2, 5, event_id="b1", source=YIDU, seq=10),  # resent in the batch
        accountability(YIDU_T2, 9, event_id="b1", source=YIDU, seq=15),  # id reused, new content
        accountability(YIDU_T2, 1, event_id="b6", source=YIDU, seq=10),  # seq taken in batch
        sanction(YIDU_T2, 4, event_id="b7", source=YIDU, seq=11),  # the rejected b2's seq
    ]
    results = hub.publish(batch)
    assert kinds(results) == [
        "accepted",
        "rejected",
        "accepted",
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert [r.field for r in results] == [
        "",
        "accountability_imposed.unit_id",
        "",
        "",
        "problem_rectified.problem_id",
        "",
        "event_id",
        "seq",
        "",
    ]
    assert hub.end() == end + 4
    assert [r.offset for r in results if r.result == ipb.RESULT_ACCEPTED] == [
        end,
        end + 1,
        end + 2,
        end + 3,
    ]
    stored = hub.log.read(0, end, 100)
    assert [pb.Event.FromString(r.value).event_id for r in stored] == ["b1", "b3", "b4", "b7"]
    assert all(r.key == YIDU.encode() for r in stored)
    for rec in stored:  # the hub stamps recorded_at with its own clock
        assert pb.Event.FromString(rec.value).recorded_at == ts(hub.clock.now)

    hub.tailer.catch_up()
    names = [
        "accountability_persons",
        "sanctioned_persons",
        "problems_found",
        "problems_rectified",
        "problems_open",
    ]
    (row,) = statistics(hub.engine, names, DANG)
    assert row.values == dict.fromkeys(names, 0)
    (row,) = statistics(hub.engine, names, YIDU_T2)
    assert row.values == {
        "accountability_persons": 5,
        "sanctioned_persons": 4,
        "problems_found": 1,
        "problems_rectified": 1,
        "problems_open": 0,
    }
    # The rejected b2 left its id free: a valid event may take it.
    (r,) = hub.publish([accountability(YIDU_T2, 1, event_id="b2", source=YIDU, seq=16)])
    assert r.result == ipb.RESULT_ACCEPTED


def test_a_rejected_dependency_rejects_its_dependant(hub: Pipeline) -> None:
    results = hub.publish(
        [
            problem("p7", DANG_T1, event_id="b1", source=YIDU, seq=10),  # outside YIDU
            rectify("p7", event_id="b2", source=YIDU, seq=11, occurred_at=T + HOUR),
            unit("420581102201", YIDU_T2, pb.LEVEL_VILLAGE, event_id="b3", source=YIDU, seq=12),
            visit("420581102201", event_id="b4", source=YIDU, seq=13),  # registered just before
        ]
    )
    assert kinds(results) == ["rejected", "rejected", "accepted", "accepted"]
    assert results[1].field == "problem_rectified.problem_id"


def test_future_is_measured_from_the_hub_clock(hub: Pipeline) -> None:
    hub.clock.now = NOW + 10 * DAY
    (r,) = hub.publish([visit(YIDU, event_id="f1", seq=50, occurred_at=NOW + 11 * DAY)])
    assert r.result == ipb.RESULT_ACCEPTED
    (r,) = hub.publish([visit(YIDU, event_id="f2", seq=51, occurred_at=NOW + 11 * DAY + 1)])
    assert (r.result, r.field) == (ipb.RESULT_REJECTED, "occurred_at")


# Pure rules.check with a plain in-memory Knowledge: the parts that need no hub.


class Known(EmptyKnowledge):
    def __init__(self, *units: Unit) -> None:
        self.units = {u.unit_id: u for u in units}

    def unit(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id)


CITY_UNIT = Unit(CITY, "", Level.CITY, "city", (CITY,))
YIDU_UNIT = Unit(YIDU, CITY, Level.COUNTY, "yidu", (CITY, YIDU))
T1_UNIT = Unit(YIDU_T1, YIDU, Level.TOWNSHIP, "t1", (CITY, YIDU, YIDU_T1))


def _visit(source: str, unit_id: str, occurred_at: int = T) -> Event:
    return Event(
        "e", source, 1, occurred_at, 0, SupervisionVisit("", "", unit_id, "grain", 0), b"d"
    )


@pytest.mark.parametrize(
    ("source", "unit_id", "kind", "field"),
    [
        (YIDU, YIDU_T1, "accepted", ""),
        (CITY, YIDU_T1, "accepted", ""),
        (YIDU_T1, YIDU_T1, "rejected", "source"),
        ("reference", YIDU_T1, "rejected", "source"),
        (YIDU, "nowhere", "rejected", "supervision_visit.unit_id"),
    ],
)
def test_check_authority(source: str, unit_id: str, kind: str, field: str) -> None:
    v = rules.check(_visit(source, unit_id), Known(CITY_UNIT, YIDU_UNIT, T1_UNIT), NOW)
    assert (v.kind, v.field) == (kind, field)
    assert v.reason.startswith(f"{field}: ") if field else v.reason == ""


class KnownProblems(Known):
    def __init__(self, problems: dict[str, Problem], *units: Unit) -> None:
        super().__init__(*units)
        self.problems = problems

    def problem(self, problem_id: str) -> Problem | None:
        return self.problems.get(problem_id)


def _rectify(source: str, problem_id: str) -> Event:
    return Event("r", source, 1, T + DAY, 0, ProblemRectified(problem_id), b"d")


def test_a_problem_of_another_subtree_is_refused_and_not_waited_for() -> None:
    # A reference may register two cities (a province's hub): one city's node rectifying the
    # other's problem is refused as a county's is, and an existing problem is never waited
    # for (only one that does not exist yet may still come, on another Kafka partition).
    other_city = Unit("429000", "", Level.CITY, "other", ("429000",))
    other_county = Unit("429001", "429000", Level.COUNTY, "c", ("429000", "429001"))
    k = KnownProblems(
        {"p": Problem("p", "429001", "grain", T)}, CITY_UNIT, YIDU_UNIT, other_city, other_county
    )
    for source in (CITY, YIDU):
        v = rules.check(_rectify(source, "p"), k, NOW)
        assert (v.kind, v.field, v.missing) == ("rejected", "problem_rectified.problem_id", False)
        assert v.reason.endswith(f"unknown problem 'p' in the source's {source}")
    assert rules.check(_rectify("429000", "p"), k, NOW).kind == "accepted"
    assert rules.check(_rectify(YIDU, "nowhere"), k, NOW).missing


def test_check_reference_allowed_only_when_asked() -> None:
    k = Known(CITY_UNIT, YIDU_UNIT, T1_UNIT)
    assert (
        rules.check(_visit("reference", YIDU_T1), k, NOW, allow_reference=True).kind == "accepted"
    )
    assert rules.check(_visit("reference", YIDU_T1), k, NOW).kind == "rejected"


def test_check_future_boundary() -> None:
    k = Known(CITY_UNIT, YIDU_UNIT, T1_UNIT)
    assert rules.check(_visit(YIDU, YIDU_T1, NOW + DAY), k, NOW).kind == "accepted"
    v = rules.check(_visit(YIDU, YIDU_T1, NOW + DAY + 1), k, NOW)
    assert (v.kind, v.field) == ("rejected", "occurred_at")


def test_recorded_at_never_goes_back_when_an_older_batch_commits_last(hub: Pipeline) -> None:
    # Concurrent streams: batches are stamped when prepared, and one prepared earlier may
    # commit after one prepared later. The log's recorded_at must still not go back.
    end = hub.end()
    early = hub.ingestor.prepare([visit(YIDU, event_id="o1", seq=60)])
    hub.clock.now = NOW + HOUR
    late = hub.ingestor.prepare([visit(YIDU, event_id="o2", seq=61)])
    assert kinds(hub.ingestor.commit(late)) == ["accepted"]
    assert kinds(hub.ingestor.commit(early)) == ["accepted"]
    stored = [pb.Event.FromString(r.value) for r in hub.log.read(0, end, 10)]
    assert [(e.event_id, e.recorded_at) for e in stored] == [
        ("o2", ts(NOW + HOUR)),
        ("o1", ts(NOW + HOUR)),
    ]
    hub.tailer.catch_up()  # and the read model counts it at the time it was logged with
    assert statistics(hub.engine, ["visits"], YIDU, as_of=NOW + HOUR - 1)[0].values == {
        "visits": statistics(hub.engine, ["visits"], YIDU, as_of=NOW - 1)[0].values["visits"]
    }


def test_recorded_at_never_goes_back_across_a_restart(hub: Pipeline) -> None:
    # A new ingest process (a restart, a pod on another host) whose clock is behind the last
    # stamp in the log: p1's rectification was stamped before p1 was found, so as of a
    # moment between them the hub "knew" a rectification of a problem it did not know yet,
    # and problems_open was -1.
    hub.tailer.catch_up()
    end = hub.end()
    assert kinds(hub.publish([problem("p7", YIDU_T2, event_id="o1", source=YIDU, seq=60)])) == [
        "accepted"
    ]
    hub.tailer.catch_up()
    behind = Ingestor(hub.log, hub.engine, Clock(NOW - HOUR))
    assert kinds(
        behind.publish([rectify("p7", event_id="o2", source=YIDU, seq=61, occurred_at=T + HOUR)])
    ) == ["accepted"]
    stored = [pb.Event.FromString(r.value) for r in hub.log.read(0, end, 10)]
    assert [(e.event_id, e.recorded_at) for e in stored] == [("o1", ts(NOW)), ("o2", ts(NOW))]
    hub.tailer.catch_up()
    names = ["problems_found", "problems_rectified", "problems_open"]
    (row,) = statistics(hub.engine, names, YIDU_T2, as_of=NOW - 1)
    assert row.values == dict.fromkeys(names, 0)
    (row,) = statistics(hub.engine, names, YIDU_T2, as_of=NOW)
    assert row.values == {"problems_found": 1, "problems_rectified": 1, "problems_open": 0}


def test_a_county_cannot_tell_another_countys_problem_from_no_problem(hub: Pipeline) -> None:
    """Rectifying another county's problem and one that exists nowhere answer a county alike:
    before, Dangyang was told "problem 'p1' lies outside the source's 420582" of Yidu's p1 and
    "unknown problem 'p9'" of p9, so it learned which of Yidu's problem ids exist (the
    walk of 2026-12-05: 宜都 probing 夷陵's `yl-p-1`). The city, which may rectify any, is still
    told precisely."""
    county = hub.publish(
        [
            rectify("p1", event_id="q1", source=DANG, seq=50, occurred_at=T + HOUR),
            rectify("p9", event_id="q2", source=DANG, seq=51, occurred_at=T + HOUR),
        ]
    )
    assert [(r.field, r.reason) for r in county] == [
        ("problem_rectified.problem_id", f"problem_rectified.problem_id: {why}")
        for why in (
            f"unknown problem 'p1' in the source's {DANG}",
            f"unknown problem 'p9' in the source's {DANG}",
        )
    ]
    (city,) = hub.publish([rectify("p9", event_id="q3", source=CITY, seq=50)])
    assert city.reason == "problem_rectified.problem_id: unknown problem 'p9'"
    (own,) = hub.publish([rectify("p9", event_id="q4", source=YIDU, seq=50)])
    assert (
        own.reason == f"problem_rectified.problem_id: unknown problem 'p9' in the source's {YIDU}"
    )
    assert kinds(
        hub.publish([rectify("p1", event_id="q5", source=CITY, seq=51, occurred_at=T + HOUR)])
    ) == ["accepted"]


def test_a_county_cannot_tell_another_countys_ids_taken_from_free_ones(hub: Pipeline) -> None:
    """Dangyang's node naming a unit of Yidu's with Yidu's problem, letter and unit ids, taken
    or free, is told alike that the unit lies outside it: before, "'p1' was already found"
    against "outside the source's" for 'p9' told it, appending nothing, which of Yidu's ids
    existed, and by bisection how many problems Yidu had found (security probe, 2026-12-07).
    Named for its own subtree, a taken id is still said to be taken."""
    outside = f"lies outside the source's {DANG}"
    probes = [
        (problem("p1", YIDU_V1, event_id="x1", source=DANG, seq=60), "problem_found.unit_id"),
        (problem("p9", YIDU_V1, event_id="x2", source=DANG, seq=61), "problem_found.unit_id"),
        (
            letter("L1", YIDU_T1, event_id="x3", source=DANG, seq=62),
            "recommendation_issued.unit_id",
        ),
        (
            letter("L9", YIDU_T1, event_id="x4", source=DANG, seq=63),
            "recommendation_issued.unit_id",
        ),
        (
            unit(YIDU_T2, YIDU, pb.LEVEL_TOWNSHIP, event_id="x5", source=DANG, seq=64),
            "org_unit_registered.parent_id",
        ),
        (
            unit("420581109", YIDU, pb.LEVEL_TOWNSHIP, event_id="x6", source=DANG, seq=65),
            "org_unit_registered.parent_id",
        ),
    ]
    answers = hub.publish([event for event, _ in probes])
    assert [(r.field, outside in r.reason) for r in answers] == [(f, True) for _, f in probes]
    own = hub.publish(
        [
            problem("p1", DANG_T1, event_id="y1", source=DANG, seq=66),
            letter("L1", DANG_T1, event_id="y2", source=DANG, seq=67),
            unit(YIDU_T2, DANG, pb.LEVEL_TOWNSHIP, event_id="y3", source=DANG, seq=68),
        ]
    )
    assert [r.reason for r in own] == [
        "problem_found.problem_id: 'p1' was already found",
        "recommendation_issued.letter_id: 'L1' was already issued",
        f"org_unit_registered.unit_id: '{YIDU_T2}' is already registered",
    ]


def test_a_clients_recorded_at_on_a_new_event_is_replaced_by_the_hubs(hub: Pipeline) -> None:
    # recorded_at is the hub's: a client setting it on a first send (a backdated one, or
    # prev_hash with it) must not make as_of and the audit say the hub knew the event earlier.
    hub.tailer.catch_up()
    end = hub.end()
    sent = visit(YIDU, event_id="rec-1", seq=70)
    sent.recorded_at.CopyFrom(ts(NOW - 365 * DAY))
    sent.prev_hash = b"x" * 32
    assert kinds(hub.publish([sent])) == ["accepted"]
    (stored,) = [pb.Event.FromString(r.value) for r in hub.log.read(0, end, 10)]
    assert stored.event_id == "rec-1" and stored.recorded_at == ts(NOW)
    assert stored.prev_hash != b"x" * 32
    hub.tailer.catch_up()
    before = statistics(hub.engine, ["visits"], YIDU, as_of=NOW - 1)[0].values["visits"]
    after = statistics(hub.engine, ["visits"], YIDU, as_of=NOW)[0].values["visits"]
    assert after == before + 1  # counted from the hub's moment, not the client's
