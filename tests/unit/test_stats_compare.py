"""`duhub query stats --compare previous`: a period and the one before, in one answer.

The figures are worked out by hand from the small event file below (times in Beijing; the
questions are asked in Asia/Shanghai unless said otherwise)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

from duhub.bootstrap import Hub
from duhub.cli.compare import change_percent
from duhub.cli.main import main
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.unit.test_http_api import publish, start_hub

EVENTS = """\
{"eventId": "a1", "source": "420581", "seq": "1", "occurredAt": "2024-01-31T10:00:00+08:00", "supervisionVisit": {"unitId": "420581", "area": "ecology"}}
{"eventId": "a2", "source": "420581", "seq": "2", "occurredAt": "2024-02-10T10:00:00+08:00", "supervisionVisit": {"unitId": "420581", "area": "ecology"}}
{"eventId": "b1", "source": "420582", "seq": "1", "occurredAt": "2024-02-29T23:30:00+08:00", "supervisionVisit": {"unitId": "420582", "area": "ecology"}}
{"eventId": "a3", "source": "420581", "seq": "3", "occurredAt": "2024-03-01T07:00:00+08:00", "supervisionVisit": {"unitId": "420581101", "area": "ecology"}}
{"eventId": "a4", "source": "420581", "seq": "4", "occurredAt": "2024-03-05T09:00:00+08:00", "supervisionVisit": {"unitId": "420581", "area": "ecology"}}
{"eventId": "a5", "source": "420581", "seq": "5", "occurredAt": "2024-03-05T09:30:00+08:00", "problemFound": {"problemId": "p1", "unitId": "420581", "area": "ecology"}}
{"eventId": "b2", "source": "420582", "seq": "2", "occurredAt": "2024-03-06T09:00:00+08:00", "supervisionVisit": {"unitId": "420582", "area": "grain"}}
{"eventId": "a6", "source": "420581", "seq": "6", "occurredAt": "2024-03-11T00:30:00+08:00", "supervisionVisit": {"unitId": "420581", "area": "ecology"}}
{"eventId": "c1", "source": "420500", "seq": "1", "occurredAt": "2024-03-12T10:00:00+08:00", "supervisionVisit": {"unitId": "420500", "area": "ecology"}}
{"eventId": "a7", "source": "420581", "seq": "7", "occurredAt": "2024-03-12T11:00:00+08:00", "problemRectified": {"problemId": "p1"}}
{"eventId": "a8", "source": "420581", "seq": "8", "occurredAt": "2024-03-13T09:00:00+08:00", "supervisionVisit": {"unitId": "420581101", "area": "ecology"}}
{"eventId": "b3", "source": "420582", "seq": "3", "occurredAt": "2024-03-13T10:00:00+08:00", "problemFound": {"problemId": "p2", "unitId": "420582", "area": "ecology"}}
{"eventId": "a9", "source": "420581", "seq": "9", "occurredAt": "2024-03-17T23:59:00+08:00", "supervisionVisit": {"unitId": "420581", "area": "ecology"}}
"""  # noqa: E501
BEIJING = ["--time-zone", "Asia/Shanghai"]
WEEK = ["--from", "2024-03-11", "--to", "2024-03-18", *BEIJING]
MARCH = ["--from", "2024-03-01", "--to", "2024-04-01", *BEIJING]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = start_hub(tmp_path_factory.mktemp("compare"))
    try:
        events = tmp_path_factory.mktemp("file") / "events.jsonl"
        events.write_text(EVENTS, encoding="utf-8")
        publish(h, events.read_text(encoding="utf-8").splitlines())
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


def test_a_week_against_the_week_before_by_county(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = "visits,problems_found,problems_open"
    code, out, err = run(
        hub, capsys, "--metric", metrics, "--group-by", "unit", "--compare", "previous", *WEEK
    )
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert "compared with the period before: event time 2024-03-04 to 2024-03-10 (7 days)" in out
    rows = {line[0]: line[2:] if line[0] != "total" else line[2:] for line in lines[3:]}
    # Per metric: now, the week before, the change, its percentage. a6 (00:30 Beijing) is
    # this week's, a Sunday in UTC; the city's own visit c1 is in no county's row.
    assert rows["420581"] == ["3", "1", "+2", "+200.0%", "0", "1", "-1", "-100.0%", "0", "1"] + [
        "-1",
        "-100.0%",
    ]
    assert rows["420582"] == ["0", "1", "-1", "-100.0%", "1", "0", "+1", "—", "1", "0", "+1", "—"]
    assert rows["420500"][-12:] == ["1", "0", "+1", "—", "0", "0", "0", "—", "0", "0", "0", "—"]
    assert rows["total"] == ["4", "2", "+2", "+100.0%", "1", "1", "0", "0.0%", "1", "1", "0"] + [
        "0.0%"
    ]


def test_a_calendar_month_against_the_month_before(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    # March in Beijing against February (29 days): a1 (January 31st) is in the 31 days
    # before April 1st's month, not in February; a3 (March 1st 07:00 Beijing) is March's.
    code, out, err = run(hub, capsys, "--metric", "visits", "--compare", "previous", *MARCH)
    assert code == 0, err
    assert "event time 2024-02-01 to 2024-02-29 (29 days)" in out
    assert out.splitlines()[-1].split() == ["7", "2", "+5", "+250.0%"]
    code, out, err = run(
        hub, capsys, "--metric", "visits", "--compare", "previous", *MARCH, "--json"
    )
    reply = json.loads(out)
    assert reply["previousFrom"] == "2024-01-31T16:00:00Z"
    assert reply["previousTo"] == "2024-02-29T16:00:00Z"
    row = reply["rows"][0]
    assert (row["values"], row["previousValues"]) == ({"visits": "7"}, {"visits": "2"})
    # In UTC, a3 is February 29th's and the months are UTC ones.
    code, out, err = run(
        hub, capsys, "--metric", "visits", "--compare", "previous", *MARCH[:4], "--json"
    )
    row = json.loads(out)["rows"][0]
    assert (row["values"], row["previousValues"]) == ({"visits": "6"}, {"visits": "3"})


def test_through_a_last_day_compares_as_to_the_day_after(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """--through is --to's other spelling: refused with --compare, it sent a clerk typing the
    week's last day back to --to."""
    through = ["--from", "2024-03-11", "--through", "2024-03-17", *BEIJING]
    asked = [
        run(hub, capsys, "--metric", "visits", "--compare", "previous", *period, "--json")
        for period in (WEEK, through)
    ]
    assert asked[0][0] == 0 and asked[1] == asked[0], asked[1][2]


def test_not_a_calendar_month_is_as_long_before(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    # March 1st 12:00 to April 1st: no midnight at the start, so as long (30.5 days) before:
    # from January 31st 00:00 (a1 in it) to March 1st 12:00 (a3 in it).
    argv = ["--from", "2024-03-01T12:00:00+08:00", "--to", "2024-04-01T00:00:00+08:00"]
    code, out, err = run(hub, capsys, "--metric", "visits", "--compare", "previous", *argv)
    assert code == 0, err
    assert "[2024-01-30T16:00:00Z .. 2024-03-01T04:00:00Z)" in out  # no zone asked: UTC
    assert out.splitlines()[-1].split() == ["6", "4", "+2", "+50.0%"]


def test_both_periods_come_in_one_answer_of_one_state(hub: Hub) -> None:
    # One request, one snapshot: the reply holds both periods, with as_of echoed for both.
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    req = qpb.GetStatisticsRequest(metrics=["visits"], compare_previous=True, time_zone="+08:00")
    req.to.FromJsonString("2024-03-17T16:00:00Z")
    getattr(req, "from").FromJsonString("2024-03-10T16:00:00Z")
    reply = stub.GetStatistics(req, timeout=10)
    assert (reply.rows[0].values["visits"], reply.rows[0].previous_values["visits"]) == (4, 2)
    assert (reply.rows[0].events["visits"], reply.rows[0].previous_events["visits"]) == (4, 2)
    assert reply.previous_to == getattr(req, "from")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--group-by", "day", *WEEK], "--group-by day"),
        (["--group-by", "week", *WEEK], "--group-by week"),
        (["--from", "2024-03-11"], "--to (or --through) is required"),
        (["--to", "2024-03-11"], "--from is required"),
        (["--campaign", "c", "--group-by", "group", *WEEK], "--campaign"),
    ],
)
def test_what_makes_no_comparison_is_refused_by_option(
    hub: Hub, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    code, out, err = run(hub, capsys, "--metric", "visits", "--compare", "previous", *argv)
    assert code == 2 and said in err and out == "", err


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"group_by": qpb.GROUP_BY_MONTH}, "compare_previous: not with group_by month"),
        ({"campaign_id": "c"}, "compare_previous: not with campaign_id"),
        ({}, "from: from and to are required with compare_previous"),
    ],
)
def test_the_service_refuses_them_invalid_argument(
    hub: Hub, fields: dict[str, object], said: str
) -> None:
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    req = qpb.GetStatisticsRequest(metrics=["visits"], compare_previous=True, **fields)
    if fields:
        getattr(req, "from").FromJsonString("2024-03-01T00:00:00Z")
        req.to.FromJsonString("2024-04-01T00:00:00Z")
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith(said), e.value.details()


@pytest.mark.parametrize(
    ("now", "before", "shown"),
    [
        (5, 4, "+25.0%"),
        (3, 4, "-25.0%"),
        (4, 4, "0.0%"),
        (1, 0, "—"),
        (0, 0, "—"),
        (2, 3, "-33.3%"),
    ],
)
def test_change_percent(now: int, before: int, shown: str) -> None:
    assert change_percent(now, before) == shown
