"""Lineage of coverage: the visit that covered each covered target, as the coverage answer
counts them (scope, group, as-of, the coverage on a day), the same whatever order visits at
one moment were applied in, and named in a read model made before visits were, where its
facts tell which; in SQLite and in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from duhub.readmodel import coverage as cov
from duhub.readmodel.coverage_lineage import explain_coverage
from duhub.readmodel.engine import open_engine
from duhub.readmodel.lineage import MAX_EXPLAIN_LIMIT
from duhub.readmodel.statistics import NotFound, QueryError
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import (
    DANG_V1,
    YIDU,
    YIDU_T1,
    YIDU_T2,
    YIDU_V1,
    Pipeline,
    at,
    campaign,
    group,
    hierarchy,
    pipeline_on,
    visit,
)
from tests.unit.test_coverage_counts import LONE, _filled

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def hub(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    with pipeline_on(request.param) as p:
        yield _filled(p)


def _named(p: Pipeline, **kw: object) -> dict[tuple[str, str], str]:
    return {
        (v.group_id, v.unit_id): v.event_id for v in explain_coverage(p.engine, "c", **kw).visits
    }


def _counted(p: Pipeline, scope: str = "", group_id: str = "", **kw: object) -> tuple[int, int]:
    """(targets, covered) as the coverage answer counts them."""
    rep = cov.coverage(p.engine, "c", scope, **kw)
    groups = [g for g in rep.groups if not group_id or g.key == group_id]
    return sum(g.targets for g in groups), sum(g.covered for g in groups)


def test_each_covered_target_is_named_with_its_earliest_visit(hub: Pipeline) -> None:
    # _filled: g covered YIDU_T1 (v2, 11-05) and DANG_V1 (v3); k covered YIDU_V1 (v4), YIDU_T1 (v5).
    whole = explain_coverage(hub.engine, "c")
    assert (whole.targets, whole.covered) == _counted(hub) == (7, 4)
    # In target order: g's targets are YIDU_V1, DANG_V1, YIDU_T1, …; k's YIDU_T1, YIDU_V1.
    assert [(v.group_id, v.unit_id, v.event_id) for v in whole.visits] == [
        ("g", DANG_V1, "v3"),
        ("g", YIDU_T1, "v2"),
        ("k", YIDU_T1, "v5"),
        ("k", YIDU_V1, "v4"),
    ]
    v = whole.visits[0]
    assert (v.source, v.seq, v.occurred_at) == ("420500", 3, at("2022-11-06"))
    assert v.unit_name and v.recorded_at == at("2023-02-01") + 3
    assert not whole.truncated

    k = explain_coverage(hub.engine, "c", group_id="k")
    assert (k.targets, k.covered) == _counted(hub, group_id="k") == (2, 2)
    assert _named(hub, scope_unit_id=YIDU) == {
        ("g", YIDU_T1): "v2",
        ("k", YIDU_T1): "v5",
        ("k", YIDU_V1): "v4",
    }
    # The coverage on a day, and as the hub knew it: the counts the coverage answer gives.
    day = at("2022-11-08")
    assert _named(hub, occurred_before=day) == {
        ("g", DANG_V1): "v3",
        ("g", YIDU_T1): "v2",
        ("k", YIDU_V1): "v4",
    }
    assert (
        explain_coverage(hub.engine, "c", occurred_before=day).covered
        == (_counted(hub, occurred_before=day)[1])
    )
    known = at("2023-02-01") + 3
    assert _named(hub, as_of=known) == {("g", DANG_V1): "v3", ("g", YIDU_T1): "v2"}
    assert explain_coverage(hub.engine, "c", as_of=known).covered == _counted(hub, as_of=known)[1]

    # A scope without targets (a village no group names): none, nothing asked of the database.
    lone = explain_coverage(hub.engine, "c", scope_unit_id=LONE)
    assert (lone.targets, lone.covered, lone.visits) == (0, 0, [])

    first = explain_coverage(hub.engine, "c", limit=1)
    assert (first.covered, len(first.visits), first.truncated) == (4, 1, True)


def test_questions_asked_wrongly_are_refused_by_name(hub: Pipeline) -> None:
    with pytest.raises(QueryError, match="^group_id: campaign 'c' has no group 'x'; its groups"):
        explain_coverage(hub.engine, "c", group_id="x")
    with pytest.raises(QueryError, match="^limit: at most"):
        explain_coverage(hub.engine, "c", limit=MAX_EXPLAIN_LIMIT + 1)
    with pytest.raises(NotFound, match="^campaign_id: unknown campaign 'nope'"):
        explain_coverage(hub.engine, "nope")
    with pytest.raises(NotFound, match="^as_of: campaign 'c' was not yet recorded"):
        explain_coverage(hub.engine, "c", as_of=at("2022-01-01"))


def _two_at_one_moment(p: Pipeline, batches: list[list[str]]) -> None:
    """Visits 'vb' and 'va' covering one target at one moment, published in `batches`."""
    p.clock.now = at("2023-02-01")
    p.publish(hierarchy(), allow_reference=True)
    p.publish([campaign("c", [group("g", pb.TIER_CITY, YIDU_V1)], event_id="camp", seq=1)])
    seqs = {"vb": 2, "va": 3}
    for i, ids in enumerate(batches, start=1):
        p.clock.now = at("2023-02-01") + i
        p.publish(
            [
                visit(YIDU_V1, "c", "g", event_id=e, seq=seqs[e], occurred_at=at("2022-11-05"))
                for e in ids
            ]
        )
        p.tailer.catch_up()


@pytest.mark.parametrize("database", DATABASES)
@pytest.mark.parametrize(
    "batches", [[["vb", "va"]], [["va", "vb"]], [["vb"], ["va"]], [["va"], ["vb"]]]
)
def test_of_two_visits_at_one_moment_the_lesser_id_is_named_whatever_the_order(
    database: str, batches: list[list[str]]
) -> None:
    with pipeline_on(database) as p:
        _two_at_one_moment(p, batches)
        assert _named(p) == {("g", YIDU_V1): "va"}
        # As the hub knew it: once both were recorded, the same; before, the one it had.
        assert _named(p, as_of=at("2023-02-01") + len(batches)) == {("g", YIDU_V1): "va"}
        if len(batches) == 2:
            assert _named(p, as_of=at("2023-02-01") + 1) == {("g", YIDU_V1): batches[0][0]}


@pytest.mark.parametrize("database", DATABASES)
def test_a_read_model_made_before_visits_were_named_gets_them_where_its_facts_tell(
    database: str,
) -> None:
    with pipeline_on(database) as p:
        _filled(p)
        # k's visit to YIDU_T1 at the very moment g's covered it: the facts cannot tell whose
        # visit covered which of the two targets' rows.
        p.clock.now = at("2023-02-02")
        p.publish([visit(YIDU_T1, "c", "k", event_id="v9", seq=9, occurred_at=at("2022-11-05"))])
        p.tailer.catch_up()
        named = _named(p)
        assert named[("k", YIDU_T1)] == "v9"
        url = p.engine.url.render_as_string(hide_password=False)
        with p.engine.begin() as conn:  # as a build before the columns left it
            conn.exec_driver_sql("UPDATE coverage SET first_event_id = NULL")
            conn.exec_driver_sql("UPDATE coverage_firsts SET event_id = NULL")
            conn.exec_driver_sql("DELETE FROM layout WHERE name = 'coverage-events'")
        assert set(_named(p).values()) == {""}
        open_engine(url).dispose()
        ambiguous = {("g", YIDU_T1), ("k", YIDU_T1)}
        assert _named(p) == {k: "" if k in ambiguous else v for k, v in named.items()}
        # As-of rows too: each named only where one visit was at the target at that moment.
        assert _named(p, as_of=at("2023-02-01") + 4) == {
            ("g", DANG_V1): "v3",
            ("g", YIDU_T1): "",
            ("k", YIDU_V1): "v4",
        }


@pytest.mark.parametrize("database", DATABASES)
def test_an_upgrade_names_no_visit_that_covered_nothing(database: str) -> None:
    """A read model made before `coverage_firsts` got a row per covered target from its
    earliest event time and its first record time: two visits' times, maybe. The one visit at
    that moment recorded then could be another, of no campaign (an auditor's probe): it must
    not be named."""
    with pipeline_on(database) as p:
        _filled(p)
        first, later = at("2023-02-03"), at("2023-02-04")
        p.clock.now = first  # g's visit on 11-20, and one of no campaign on 11-10, together
        p.publish(
            [
                visit(YIDU_T2, "c", "g", event_id="vb", seq=20, occurred_at=at("2022-11-20")),
                visit(YIDU_T2, event_id="vc", seq=21, occurred_at=at("2022-11-10")),
            ]
        )
        p.clock.now = later  # then g's visit dated 11-10, the earliest
        p.publish([visit(YIDU_T2, "c", "g", event_id="va", seq=22, occurred_at=at("2022-11-10"))])
        p.tailer.catch_up()
        assert _named(p, as_of=first)[("g", YIDU_T2)] == "vb"
        url = p.engine.url.render_as_string(hide_password=False)
        with p.engine.begin() as conn:  # as a build before coverage_firsts left it
            conn.exec_driver_sql("UPDATE coverage SET first_event_id = NULL")
            conn.exec_driver_sql("DELETE FROM coverage_firsts")
            conn.exec_driver_sql(
                "DELETE FROM layout WHERE name IN ('coverage-firsts', 'coverage-events')"
            )
        open_engine(url).dispose()
        # One row (first recorded, earliest dated): two visits' times, so no visit is its.
        assert _named(p, as_of=first)[("g", YIDU_T2)] == ""
        assert _named(p)[("g", YIDU_T2)] == ""  # va and vc at one moment: not told apart
