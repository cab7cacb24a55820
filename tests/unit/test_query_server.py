"""The query server in a whole in-process hub, asked as people and scripts ask it: `duhub query
stats` tables (the total row of a table grouped by unit is the scope's figure, events at the
scope unit itself included: they are in no child's row), and errors of bad questions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from prometheus_client import REGISTRY
from sqlalchemy import event

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.unit.builders import at, campaign, group, kinds, talk, ts, unit, visit

YIDU = "420581"  # a county of the reference hierarchy, with townships
NIEJIAHE = "420581101"  # one of its townships


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(HubConfig(tmp_path, listen="127.0.0.1:0", http=""))
    h.start()
    try:
        yield h
    finally:
        h.stop(grace=0)


def test_the_total_by_unit_holds_the_scope_units_own_events(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        talk(YIDU, 4, pb.TALK_KIND_TOP_LEADER, event_id="t1", source="420500", seq=1),
        talk(NIEJIAHE, 2, pb.TALK_KIND_OTHER, event_id="t2", source="420500", seq=2),
    ]
    assert kinds(hub.ingestor.publish(events)) == ["accepted", "accepted"]
    hub.tailer.catch_up()
    (row,) = statistics(hub.engine, ["talk_persons"], YIDU)
    assert row.values == {"talk_persons": 6}

    argv = ["query", "stats", "--metric", "talk_persons", "--scope", YIDU, "--group-by", "unit"]
    assert main([*argv, "--target", hub.address]) == 0
    table = capsys.readouterr().out.splitlines()
    (niejiahe,) = [x for x in table if x.startswith(NIEJIAHE)]
    assert niejiahe.split()[-1] == "2"
    (total,) = [x for x in table if x.startswith("total")]
    assert total.split()[-1] == "6", table


def test_too_many_periods_is_a_bad_question_naming_group_by(hub: Hub) -> None:
    """Bad input gets a clear error naming the field: not UNKNOWN, which the command line
    reads as 'no hub answered'."""
    hub.tailer.catch_up()  # the reference hierarchy: the city is known
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    req = qpb.GetStatisticsRequest(metrics=["visits"], group_by=qpb.GROUP_BY_DAY)
    getattr(req, "from").CopyFrom(ts(at("2001-01-01")))
    req.to.CopyFrom(ts(at("2030-01-01")))
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("group_by: more than 5000 periods")


def test_an_unknown_group_by_is_refused_naming_the_values_a_client_can_write(hub: Hub) -> None:
    """A script writing the request in JSON copies the values from the refusal: each must be
    one JSON accepts, and answered."""
    hub.tailer.catch_up()
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(qpb.GetStatisticsRequest(metrics=["visits"], group_by=42), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = e.value.details()
    assert details.startswith("group_by: must be one of "), details
    listed, got, _ = details.removeprefix("group_by: must be one of ").partition(" (got 42)")
    assert got, details
    names = listed.split(", ")
    assert len(names) == 8, details  # group and tier too (with campaign_id)
    for name in names:
        if name in ("GROUP_BY_GROUP", "GROUP_BY_TIER"):
            continue  # a campaign's only (tests/unit/test_group_stats_cli.py)
        req = json_format.Parse(
            json.dumps(
                {
                    "metrics": ["visits"],
                    "groupBy": name,
                    "from": "2022-01-01T00:00:00Z",
                    "to": "2023-01-01T00:00:00Z",
                }
            ),
            qpb.GetStatisticsRequest(),
        )
        assert stub.GetStatistics(req, timeout=10).rows, name


def test_campaigns_print_a_window_that_is_not_whole_days_as_it_is(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """The simulated campaign's window runs from a day before its launch to thirty days after,
    to the nanosecond. `duhub campaigns` printed only the dates, under 'to (excl.)': a visit on
    the last date, inside the window [starts_at, ends_at) and covering its target, lay on a
    day the table said was excluded."""
    starts, ends = at("2022-11-01T12:30:00"), at("2022-12-01T12:30:00") + 250_000_000
    events = [
        campaign(
            "c-noon",
            [group("n1", pb.TIER_COUNTY, NIEJIAHE)],
            starts_at=starts,
            ends_at=ends,
            event_id="c1",
            seq=1,
        ),
        campaign("c-days", [group("n1", pb.TIER_COUNTY, NIEJIAHE)], event_id="c2", seq=2),
        visit(
            NIEJIAHE,
            "c-noon",
            "n1",
            event_id="v1",
            source=YIDU,
            seq=1,
            occurred_at=at("2022-12-01T06:00:00"),
        ),
    ]
    assert kinds(hub.ingestor.publish(events)) == ["accepted"] * 3
    hub.tailer.catch_up()
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    cov = stub.GetCoverage(qpb.GetCoverageRequest(campaign_id="c-noon"), timeout=10)
    assert cov.full  # the visit on 2022-12-01 lies inside the window

    assert main(["campaigns", "--target", hub.address]) == 0
    table = capsys.readouterr().out.splitlines()
    (noon,) = [x for x in table if x.startswith("c-noon")]
    assert noon.split()[-2:] == ["2022-11-01T12:30:00Z", "2022-12-01T12:30:00.250Z"], table
    (days,) = [x for x in table if x.startswith("c-days")]
    assert days.split()[-2:] == ["2022-11-01", "2023-01-01"], table


def test_a_coverage_short_of_full_never_prints_as_100_percent(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """Full coverage is 100% at every tier; 2,000 of 2,001 targets is not. A ratio printed to
    one decimal rounded 0.9995 and above up to '100.0%', beside 'full coverage: no' and the
    uncovered target: a wall screen or a report read it as done. Short of full prints at most
    99.9%, and a start (1 of 2,001) at least 0.1%."""
    villages = [f"{NIEJIAHE}-x{i:04d}" for i in range(2001)]
    regs = [
        unit(v, NIEJIAHE, pb.LEVEL_VILLAGE, event_id=f"u{i}", seq=i + 1)
        for i, v in enumerate(villages)
    ]
    launch = campaign(
        "big",
        [
            group("n1", pb.TIER_COUNTY, *villages, name="一组"),
            group("n2", pb.TIER_COUNTY, *villages, name="二组"),
        ],
        event_id="c1",
        seq=len(regs) + 1,
    )
    visits = [
        visit(v, "big", "n1", event_id=f"v{i}", source=YIDU, seq=i + 1)
        for i, v in enumerate(villages[:-1])
    ] + [visit(villages[0], "big", "n2", event_id="w0", source=YIDU, seq=len(villages))]
    for batch in (regs, [launch], visits):
        assert set(kinds(hub.ingestor.publish(batch))) == {"accepted"}
    hub.tailer.catch_up()

    assert main(["query", "coverage", "--campaign", "big", "--target", hub.address]) == 0
    out = capsys.readouterr().out
    assert "full coverage 督导全覆盖: no" in out
    (n1,) = [x.split() for x in out.splitlines() if x.startswith("n1 ")]
    assert n1[3:6] == ["2001", "2000", "99.9%"], out
    (n2,) = [x.split() for x in out.splitlines() if x.startswith("n2 ")]
    assert n2[3:6] == ["2001", "1", "0.1%"], out


def test_coverage_prints_the_rate_of_all_tiers_and_when_each_tier_became_full(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """A supervision report states one coverage rate and the day full coverage (督导全覆盖)
    was reached. The table gave a rate per tier only, and a full time per group and county:
    the analyst added tiers up by hand (the dashboard's card and `explain --campaign` count
    5 of 9) and took the latest of the groups' times for the campaign's."""
    launch = campaign(
        "c",
        [
            group("tf", pb.TIER_TASK_FORCE),
            group("c1", pb.TIER_CITY, YIDU),
            group("n1", pb.TIER_COUNTY, NIEJIAHE, "420581102"),
        ],
        event_id="c1",
        seq=1,
    )
    city = visit(YIDU, "c", "c1", event_id="v1", seq=2, occurred_at=at("2022-11-02T01:00:00"))
    first = visit(NIEJIAHE, "c", "n1", event_id="v2", source=YIDU, seq=1)
    last = visit(
        "420581102",
        "c",
        "n1",
        event_id="v3",
        source=YIDU,
        seq=2,
        occurred_at=at("2022-11-20T02:30:00"),
    )
    argv = ["query", "coverage", "--campaign", "c", "--target", hub.address]

    def tiers() -> dict[str, list[str]]:
        assert main([*argv, "--time-zone", "Asia/Shanghai"]) == 0
        out = capsys.readouterr().out
        rows = [x.split("  ") for x in out.splitlines()]
        return {r[0].strip(): [c.strip() for c in r[1:] if c.strip()] for r in rows if r}

    assert kinds(hub.ingestor.publish([launch, city, first])) == ["accepted"] * 3
    hub.tailer.catch_up()
    shown = tiers()
    assert shown["市本级 city"] == ["1", "1", "100.0%", "2022-11-02 09:00 +08:00"], shown
    assert shown["县市区 county"] == ["2", "1", "50.0%", "—"], shown
    assert shown["all tiers 合计"] == ["3", "2", "66.7%", "—"], shown

    assert kinds(hub.ingestor.publish([last])) == ["accepted"]
    hub.tailer.catch_up()
    shown = tiers()
    assert shown["县市区 county"] == ["2", "2", "100.0%", "2022-11-20 10:30 +08:00"], shown
    assert shown["all tiers 合计"] == ["3", "3", "100.0%", "2022-11-20 10:30 +08:00"], shown
    assert shown["工作专班 task force"] == ["0", "0", "—", "—"], shown


def test_coverage_prints_the_moment_it_answers_for_as_asked(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """An as-of answer is about record times, which lie seconds apart. The table's head cut
    the moment to the minute ('as of 2026-12-05 03:04Z' for 03:04:32.406626324Z): an auditor
    read another moment than the one answered, whose events could differ."""
    events = [campaign("c", [group("n1", pb.TIER_COUNTY, NIEJIAHE)], event_id="c1", seq=1)]
    assert kinds(hub.ingestor.publish(events)) == ["accepted"]
    hub.tailer.catch_up()
    time.sleep(1)  # a moment after the campaign was recorded, to the nanosecond:
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S") + ".123456789Z"
    argv = ["query", "coverage", "--campaign", "c", "--as-of", moment, "--target", hub.address]
    assert main(argv) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.endswith(f", as of {moment}"), head


def test_coverage_as_of_a_date_in_a_zone_says_the_moment_in_that_zone(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--as-of 2026-12-07 --time-zone Asia/Shanghai` answered "as of 2026-12-06T16:00:00Z":
    the day before, to a reader in Beijing, with no zone named."""
    events = [campaign("c", [group("n1", pb.TIER_COUNTY, NIEJIAHE)], event_id="c1", seq=1)]
    assert kinds(hub.ingestor.publish(events)) == ["accepted"]
    hub.tailer.catch_up()
    argv = ["query", "coverage", "--campaign", "c", "--target", hub.address]
    zone = ["--as-of", "2262-01-07", "--time-zone", "Asia/Shanghai"]
    assert main([*argv, *zone]) == 0
    said = capsys.readouterr()
    head = said.out.splitlines()[0]
    assert head.endswith(", as of 2262-01-07 00:00:00 +08:00 (2262-01-06T16:00:00Z)"), head
    # A moment still to come is answered with what the hub holds so far: said so.
    assert said.err == (
        "duhub: warning: --as-of 2262-01-07 (2262-01-06T16:00:00Z) is still to come: the "
        "figures are what the hub holds so far, and may change until then\n"
    )
    past = ["query", "stats", "--metric", "visits", "--as-of", "2022-01-01"]
    assert main([*past, "--target", hub.address]) == 0
    assert capsys.readouterr().err == ""


def test_coverage_of_a_scope_without_targets_says_so_not_yes(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """A village no group targets printed "full coverage: YES" and 100.0% for every tier, with
    0 targets: a clerk drilling down read that the village had been supervised."""
    events = [campaign("c", [group("n1", pb.TIER_COUNTY, NIEJIAHE)], event_id="c1", seq=1)]
    assert kinds(hub.ingestor.publish(events)) == ["accepted"]
    hub.tailer.catch_up()
    other = "420582"  # another county (当阳市): NIEJIAHE lies in Yidu
    argv = ["query", "coverage", "--campaign", "c", "--scope", other, "--target", hub.address]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "full coverage 督导全覆盖: — (no targets in this scope" in out, out
    assert "100.0%" not in out and "YES" not in out, out
    # The same answer in JSON stays the contract's: full, nothing holding it back.
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["full"] is True


def test_campaigns_are_listed_without_their_targets_when_asked(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """A campaign may name 100,000 targets. `duhub campaigns` and the dashboard's list (read
    again every 5 s while events come) read every target of every campaign: 3.1 s for two of
    99,855 targets on a country-sized hub, and past ~24 such campaigns more than the 32 MiB a
    reply may hold. Asked with omit_targets, the listing reads no target and stays small;
    GetCampaign names them."""
    hub.tailer.catch_up()  # the reference hierarchy
    with hub.engine.connect() as conn:
        below = "SELECT unit_id FROM units WHERE level >= 3 ORDER BY unit_id"
        targets = [r[0] for r in conn.exec_driver_sql(below)]
    assert len(targets) > 1000
    events = [
        campaign(
            f"wide{i}",
            [group("tf", pb.TIER_TASK_FORCE), group("n1", pb.TIER_COUNTY, *targets)],
            event_id=f"c{i}",
            seq=i,
        )
        for i in (1, 2, 3)
    ]
    assert kinds(hub.ingestor.publish(events)) == ["accepted"] * 3
    hub.tailer.catch_up()
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    full = stub.ListCampaigns(qpb.ListCampaignsRequest(), timeout=10)
    assert [list(g.target_unit_ids) for g in full.campaigns[0].groups] == [[], targets]

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(hub.engine, "before_cursor_execute", count)
    try:
        listed = stub.ListCampaigns(qpb.ListCampaignsRequest(omit_targets=True), timeout=10)
        assert main(["campaigns", "--target", hub.address]) == 0
    finally:
        event.remove(hub.engine, "before_cursor_execute", count)
    assert [x for x in statements if "campaign_targets" in x] == []
    assert listed.ByteSize() < 1000 < full.ByteSize() / 30
    for short, whole in zip(listed.campaigns, full.campaigns, strict=True):
        assert [g.target_unit_ids for g in short.groups] == [[], []]
        for g in whole.groups:
            g.ClearField("target_unit_ids")
        assert short == whole
    table = capsys.readouterr().out.splitlines()
    assert [x.split()[3] for x in table if x.startswith("wide")] == ["1+0+1"] * 3


def test_coverage_names_the_uncovered_units_of_each_group(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clerk reads which units are left by name: an id alone (`1 uncovered: 420581102`)
    said nothing until looked up elsewhere (analyst review, 2026-12-07)."""
    launch = campaign("c", [group("n1", pb.TIER_COUNTY, NIEJIAHE, "420581102")], event_id="c1")
    first = visit(NIEJIAHE, "c", "n1", event_id="v1", source="420581", seq=1)
    assert kinds(hub.ingestor.publish([launch, first])) == ["accepted"] * 2
    hub.tailer.catch_up()
    asked = _get_unit_calls()
    assert main(["query", "coverage", "--campaign", "c", "--target", hub.address]) == 0
    out = capsys.readouterr().out
    assert "1 uncovered: 柏花口镇 (420581102)" in out, out
    # Named from the reply: a GetUnit call per unit shown was 70 round trips for the
    # simulator's campaign. Counted by the server's own metrics, as it served them.
    assert _get_unit_calls() == asked


def _get_unit_calls() -> float:
    """Return how many GetUnit calls the in-process server has answered (duhub.metrics)."""
    found = REGISTRY.get_sample_value("duhub_query_seconds_count", {"rpc": "GetUnit"})
    return found or 0.0


DANGYANG_TOWN = "420582101"  # a township of another county (当阳市)


def test_the_coverage_reply_names_the_uncovered_units_in_its_scope(hub: Hub) -> None:
    """GetCoverage and WatchCoverage name each group's uncovered units beside their ids, as
    many as asked (uncovered_named), read with the campaign's targets: a client needs no
    GetUnit per unit. Scoped to a county, the names are of its uncovered targets only, as the
    ids are. Not asked, none are named."""
    targets = (NIEJIAHE, "420581102", DANGYANG_TOWN)
    launch = campaign("c", [group("n1", pb.TIER_COUNTY, *targets)], event_id="c1")
    first = visit(NIEJIAHE, "c", "n1", event_id="v1", source="420581", seq=1)
    assert kinds(hub.ingestor.publish([launch, first])) == ["accepted"] * 2
    hub.tailer.catch_up()
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))

    def named(reply: qpb.Coverage) -> list[tuple[str, str]]:
        (g,) = reply.groups
        assert [u.unit_id for u in g.uncovered_units] == list(g.uncovered_unit_ids)
        return [(u.unit_id, u.name) for u in g.uncovered_units]

    whole = stub.GetCoverage(qpb.GetCoverageRequest(campaign_id="c", uncovered_named=9), timeout=10)
    assert named(whole) == [("420581102", "柏花口镇"), (DANGYANG_TOWN, "花花溪镇")]
    yidu = stub.GetCoverage(
        qpb.GetCoverageRequest(campaign_id="c", scope_unit_id=YIDU, uncovered_named=9), timeout=10
    )
    assert named(yidu) == [("420581102", "柏花口镇")]
    first = stub.GetCoverage(qpb.GetCoverageRequest(campaign_id="c", uncovered_named=1), timeout=10)
    assert first.groups[0].uncovered_units[0].name == "柏花口镇"
    assert len(first.groups[0].uncovered_units) == 1
    plain = stub.GetCoverage(qpb.GetCoverageRequest(campaign_id="c"), timeout=10)
    assert not plain.groups[0].uncovered_units and len(plain.groups[0].uncovered_unit_ids) == 2
    watch = stub.WatchCoverage(
        qpb.WatchCoverageRequest(campaign_id="c", scope_unit_id=YIDU, uncovered_named=9)
    )
    try:
        assert named(next(watch)) == [("420581102", "柏花口镇")]
    finally:
        watch.cancel()
    # Canonical JSON (`--json`) shows them beside the ids, which stay as they were.
    shown = json.loads(json_format.MessageToJson(whole))["groups"][0]
    assert shown["uncoveredUnitIds"] == ["420581102", DANGYANG_TOWN]
    assert shown["uncoveredUnits"][1] == {"unitId": DANGYANG_TOWN, "name": "花花溪镇"}
