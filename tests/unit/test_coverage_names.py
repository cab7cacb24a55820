"""How many uncovered units a coverage reply names (GroupCoverage.uncovered_units): each
group's first ones, every group alike, within a bound on the whole reply."""

from __future__ import annotations

from duhub.domain.events import Tier
from duhub.domain.model import Campaign
from duhub.readmodel.coverage import CoverageReport, Tally
from services.query.replies import UNCOVERED_NAMED_IN_ALL, coverage_reply


def _report(uncovered: list[int]) -> CoverageReport:
    groups = [
        Tally(f"g{i}", f"group {i}", Tier.COUNTY, n, 0, [f"u{i}-{j}" for j in range(n)])
        for i, n in enumerate(uncovered)
    ]
    names = {u: f"村{u}" for g in groups for u in g.uncovered}
    campaign = Campaign("c", "campaign", "area", 0, 1, (), "420500", 0)
    return CoverageReport(campaign, "", groups, [], [], None, names=names)


def test_a_group_names_its_first_uncovered_units_as_many_as_asked() -> None:
    (g,) = coverage_reply(_report([200]), 150).groups
    assert len(g.uncovered_unit_ids) == 200  # every id, as the contract says
    assert [(u.unit_id, u.name) for u in g.uncovered_units] == [
        (f"u0-{j}", f"村u0-{j}") for j in range(150)
    ]


def test_thousands_of_groups_each_name_alike_within_the_bound() -> None:
    """A country's 2,800 county groups, none covered: naming every uncovered unit made a
    reply past the 4 MB a stock gRPC client takes; naming first come left the groups after
    the 133rd by id alone. Each names its first 7: all four the command line shows."""
    reply = coverage_reply(_report([36] * 2800), 150)
    named = [len(g.uncovered_units) for g in reply.groups]
    assert named == [7] * 2800
    assert sum(named) <= UNCOVERED_NAMED_IN_ALL
    assert [len(g.uncovered_unit_ids) for g in reply.groups] == [36] * 2800


def test_a_unit_the_read_model_lacks_is_listed_without_a_name() -> None:
    report = _report([2])
    del report.names["u0-1"]  # type: ignore[attr-defined]
    (g,) = coverage_reply(report, 4).groups
    assert [(u.unit_id, u.name) for u in g.uncovered_units] == [("u0-0", "村u0-0"), ("u0-1", "")]


def test_none_are_named_unless_asked() -> None:
    """Building a name costs ~1 µs on an answer not cached: a client that shows none (the
    dashboard names them itself, with their parents) does not pay for them."""
    (g,) = coverage_reply(_report([200])).groups
    assert len(g.uncovered_unit_ids) == 200 and not g.uncovered_units
