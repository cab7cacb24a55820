"""`duhub query stats --campaign C --group-by group|tier`: a campaign's visits per group and
tier for a week in Beijing time, through the query service; other metrics refused by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.unit.builders import at, campaign, group, kinds, visit

YIDU, DANG, NIEJIAHE = "420581", "420582", "420581101"
WEEK = ["--from", "2022-11-07", "--to", "2022-11-14", "--time-zone", "Asia/Shanghai"]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(HubConfig(tmp_path, listen="127.0.0.1:0", http=""))
    h.start()
    try:
        groups = [
            group("city-1", pb.TIER_CITY, YIDU, name="第一组"),
            group("city-2", pb.TIER_CITY, DANG, name="第二组"),
            group("yidu", pb.TIER_COUNTY, NIEJIAHE, name="宜都组"),
        ]
        events = [campaign("c1", groups, occurred_at=at("2022-10-01"))]
        # Monday 01:00 in Beijing (Sunday in UTC), mid-week, and the next Monday 01:00.
        for unit, g, t in [
            (YIDU, "city-1", "2022-11-06T17:00:00"),
            (NIEJIAHE, "yidu", "2022-11-09T03:00:00"),
            (NIEJIAHE, "yidu", "2022-11-10T03:00:00"),
            (DANG, "city-2", "2022-11-13T17:00:00"),
        ]:
            events.append(visit(unit, "c1", g, occurred_at=at(t)))
        for i, e in enumerate(events, start=1):
            e.event_id, e.seq = f"e{i}", i
        assert set(kinds(h.ingestor.publish(events))) == {"accepted"}
        h.tailer.catch_up()
        yield h
    finally:
        h.stop(grace=0)


def run(hub: Hub, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(["query", "stats", *argv, "--target", hub.address])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_visits_per_group_with_tiers_and_total(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        hub, capsys, "--metric", "visits", "--campaign", "c1", "--group-by", "group", *WEEK
    )
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][:2] == ["campaign", "c1,"]
    body = [line for line in lines if line and line[0] in ("city-1", "city-2", "yidu")]
    assert body == [
        ["city-1", "第一组", "city", "1"],
        ["city-2", "第二组", "city", "0"],
        ["yidu", "宜都组", "county", "2"],
    ]
    assert ["city", "tier", "小计", "city", "1"] in lines
    assert ["county", "tier", "小计", "county", "2"] in lines
    assert lines[-1] == ["total", "合计", "3"]
    code, out, _ = run(
        hub, capsys, "--metric", "visits", "--campaign", "c1", "--group-by", "tier", "--json"
    )
    reply = json.loads(out)
    assert [(r["key"], r["values"]["visits"]) for r in reply["rows"]] == [
        ("city", "2"),
        ("county", "2"),
    ]
    assert reply["total"]["values"] == {"visits": "4"} and reply["campaignId"] == "c1"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--metric", "problems_found", "--campaign", "c1"], "--metric"),
        (["--metric", "visits", "--campaign", "c1", "--group-by", "unit"], "--group-by"),
        (["--metric", "visits", "--group-by", "group"], "--campaign"),
    ],
)
def test_what_no_group_makes_is_refused_by_option(
    hub: Hub, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    code, _, err = run(hub, capsys, *argv)
    assert code == 2 and said in err, err


def test_the_service_refuses_other_metrics_invalid_argument(hub: Hub) -> None:
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    req = qpb.GetStatisticsRequest(metrics=["talk_persons"], campaign_id="c1")
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("metrics: 'talk_persons' is not counted per campaign")
    req = qpb.GetStatisticsRequest(metrics=["visits"], campaign_id="c1")
    req.as_of.FromJsonString("2022-09-01T00:00:00Z")
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
