"""GetStatistics.time_zone through the hub: answered in the zone, refused by name when bad,
kept apart in the answer cache; and the command line's --time-zone."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.unit.builders import at, campaign, group, kinds, talk, ts, visit

YIDU = "420581"  # a county of the reference hierarchy
NIEJIAHE = "420581101"  # one of its townships


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(HubConfig(tmp_path, listen="127.0.0.1:0", http=""))
    h.start()
    try:
        events = [
            # 12-02 07:00 and 09:00 Beijing time: 12-01 23:00 and 12-02 01:00 UTC.
            talk(NIEJIAHE, 3, occurred_at=at("2022-12-01T23:00:00"), event_id="t1", seq=1),
            talk(NIEJIAHE, 5, occurred_at=at("2022-12-02T01:00:00"), event_id="t2", seq=2),
        ]
        assert kinds(h.ingestor.publish(events)) == ["accepted", "accepted"]
        h.tailer.catch_up()
        yield h
    finally:
        h.stop(grace=0)


def request(time_zone: str = "", group_by: int = qpb.GROUP_BY_DAY) -> qpb.GetStatisticsRequest:
    req = qpb.GetStatisticsRequest(
        metrics=["talk_persons"], scope_unit_id=YIDU, group_by=group_by, time_zone=time_zone
    )
    getattr(req, "from").CopyFrom(ts(at("2022-11-30T16:00:00")))  # Beijing 12-01 00:00
    req.to.CopyFrom(ts(at("2022-12-02T16:00:00")))  # Beijing 12-03 00:00
    return req


def rows(reply: qpb.Statistics) -> list[tuple[str, int]]:
    return [(r.key, r.values["talk_persons"]) for r in reply.rows]


def test_a_cached_utc_answer_is_never_served_for_a_beijing_question(hub: Hub) -> None:
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    utc = [("2022-11-30", 0), ("2022-12-01", 3), ("2022-12-02", 5)]
    beijing = [("2022-12-01", 0), ("2022-12-02", 8)]
    for _ in range(2):  # the second round from the cache
        assert rows(stub.GetStatistics(request(), timeout=10)) == utc
        assert rows(stub.GetStatistics(request("Asia/Shanghai"), timeout=10)) == beijing
        assert rows(stub.GetStatistics(request("+08:00"), timeout=10)) == beijing


@pytest.mark.parametrize(
    ("zone", "why"),
    [
        ("Asia/Shangai", "time_zone: unknown time zone 'Asia/Shangai'; "),
        ("+24:00", "time_zone: offset '+24:00' out of range"),
        ("Beijing", "time_zone: unknown time zone 'Beijing'; "),
        (" Asia/Shanghai", "time_zone: "),
    ],
)
@pytest.mark.parametrize("group_by", [qpb.GROUP_BY_DAY, qpb.GROUP_BY_UNIT, 0])
def test_a_bad_time_zone_is_refused_naming_the_field(
    hub: Hub, zone: str, why: str, group_by: int
) -> None:
    """Without a period group_by the zone changes nothing, but a bad one is still a question
    asked wrongly."""
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(request(zone, group_by), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith(why), e.value.details()


def test_without_a_period_the_zone_changes_nothing(hub: Hub) -> None:
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    for group_by in (0, qpb.GROUP_BY_UNIT):
        utc = stub.GetStatistics(request("", group_by), timeout=10)
        assert stub.GetStatistics(request("Asia/Shanghai", group_by), timeout=10) == utc


def stats(hub: Hub, capsys: pytest.CaptureFixture[str], *args: str) -> list[tuple[str, str]]:
    argv = ["query", "stats", "--metric", "talk_persons", "--scope", YIDU, *args]
    assert main([*argv, "--target", hub.address]) == 0
    out = capsys.readouterr().out.splitlines()
    return [(x.split()[0], x.split()[-1]) for x in out if x[:4] in ("2022", "tota")]


def test_the_command_line_reads_bare_dates_in_its_time_zone(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    november = ["--from", "2022-12-01", "--to", "2022-12-03", "--group-by", "day"]
    assert stats(hub, capsys, *november, "--time-zone", "Asia/Shanghai") == [
        ("2022-12-01", "0"),
        ("2022-12-02", "8"),
        ("total", "8"),
    ]
    # Without it, UTC days, as before.
    assert stats(hub, capsys, *november) == [
        ("2022-12-01", "3"),
        ("2022-12-02", "5"),
        ("total", "8"),
    ]
    # An RFC 3339 time keeps its own offset: [12-02 08:00, 12-02 09:00) Beijing is empty.
    window = ["--from", "2022-12-02T00:00:00Z", "--to", "2022-12-02T01:00:00Z"]
    assert stats(hub, capsys, *window, "--group-by", "day", "--time-zone", "+08:00") == [
        ("2022-12-02", "0")
    ]
    # A bare date ungrouped is also the zone's midnight: Beijing 12-02 holds both talks.
    argv = ["query", "stats", "--metric", "talk_persons", "--scope", YIDU]
    argv += ["--from", "2022-12-02", "--to", "2022-12-03", "--time-zone", "Asia/Shanghai"]
    assert main([*argv, "--target", hub.address, "--json"]) == 0
    assert '"talk_persons": "8"' in capsys.readouterr().out


def test_duhub_time_zone_sets_the_zone_an_option_left_out_means(
    hub: Hub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An office in Beijing sets DUHUB_TIME_ZONE once instead of typing --time-zone on every
    question; --time-zone still wins, and the zone is said where the answer is printed."""
    november = ["--from", "2022-12-01", "--to", "2022-12-03", "--group-by", "day"]
    beijing = [("2022-12-01", "0"), ("2022-12-02", "8"), ("total", "8")]
    utc = [("2022-12-01", "3"), ("2022-12-02", "5"), ("total", "8")]
    monkeypatch.setenv("DUHUB_TIME_ZONE", "Asia/Shanghai")
    argv = ["query", "stats", "--metric", "talk_persons", "--scope", YIDU, *november]
    assert main([*argv, "--target", hub.address]) == 0
    out = capsys.readouterr().out
    assert "time zone Asia/Shanghai" in out
    assert [
        (x.split()[0], x.split()[-1]) for x in out.splitlines() if x[:4] in ("2022", "tota")
    ] == beijing
    assert stats(hub, capsys, *november, "--time-zone", "UTC") == utc
    monkeypatch.setenv("DUHUB_TIME_ZONE", "")  # set empty: as unset, UTC
    assert stats(hub, capsys, *november) == utc


@pytest.mark.parametrize(
    "command",
    [
        ["query", "stats", "--metric", "visits", "--from", "2022-12-01"],
        ["query", "coverage", "--campaign", "c", "--as-of", "2022-12-01"],
        ["explain", "--metric", "visits", "--from", "2022-12-01"],
        ["audit", "report", "--from", "2022-12-01", "--to", "2022-12-02"],
    ],
)
def test_a_bad_duhub_time_zone_exits_2_naming_it_before_asking(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUHUB_TIME_ZONE", "Asia/Shangai")
    with pytest.raises(SystemExit) as e:
        main([*command, "--target", closed_port()])
    assert e.value.code == 2
    assert "duhub: DUHUB_TIME_ZONE: unknown time zone 'Asia/Shangai'" in capsys.readouterr().err


def test_an_offset_west_of_utc_is_taken_as_the_option_s_value(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse read '-05:00' as an option of its own: "expected one argument", exit 2.
    window = ["--from", "2022-12-01", "--to", "2022-12-03", "--group-by", "day"]
    glued = stats(hub, capsys, *window, "--time-zone=-05:00")
    assert stats(hub, capsys, *window, "--time-zone", "-05:00") == glued
    # 12-01 23:00 and 12-02 01:00 UTC are 18:00 and 20:00 on 12-01 at -05:00.
    assert glued == [("2022-12-01", "8"), ("2022-12-02", "0"), ("total", "8")]


def test_a_bad_offset_west_of_utc_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["query", "stats", "--metric", "visits", "--time-zone", "-5", "--target", "x:1"])
    assert e.value.code == 2
    assert "duhub: --time-zone: unknown time zone '-5'" in capsys.readouterr().err


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("zone", ["Asia/Shangai", "+8", "", "+08:00 "])
def test_a_bad_time_zone_option_exits_2_naming_it_before_asking(
    zone: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["query", "stats", "--metric", "visits", "--group-by", "day", "--time-zone", zone]
    argv += ["--from", "2022-12-01", "--to", "2022-12-03", "--target", closed_port()]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--time-zone: " in err, err  # the reason, not argparse's "unrecognized arguments"


def test_help_tells_of_the_time_zone(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["query", "stats", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--time-zone ZONE" in help_text and "Asia/Shanghai" in help_text


def run_cli(hub: Hub, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main([*argv, "--target", hub.address]) == 0
    return capsys.readouterr().out


def test_explain_reads_bare_dates_in_its_time_zone(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Beijing day's row explained with the same dates and zone lists the same events."""
    argv = ["explain", "--metric", "talk_persons", "--scope", YIDU]
    argv += ["--from", "2022-12-02", "--to", "2022-12-03"]
    assert run_cli(hub, capsys, *argv, "--time-zone", "Asia/Shanghai").startswith(
        "talk_persons = 8, from 2 events"
    )
    assert run_cli(hub, capsys, *argv).startswith("talk_persons = 5, from 1 event\n")


def test_audit_report_reads_bare_dates_in_its_time_zone(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["audit", "report", "--from", "2022-12-02", "--to", "2022-12-03", "--format", "json"]
    beijing = run_cli(hub, capsys, *argv, "--time-zone", "Asia/Shanghai")
    utc = run_cli(hub, capsys, *argv)

    def yidu(out: str) -> int:
        import json

        (row,) = [r for r in json.loads(out)["rows"] if r["county"] == YIDU]
        return int(row["values"]["talk_persons"])

    assert (yidu(beijing), yidu(utc)) == (8, 5)


def test_coverage_reads_a_bare_as_of_in_its_time_zone(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = campaign("c1", [group("g1", pb.TIER_COUNTY, NIEJIAHE)], event_id="c1", seq=3)
    assert kinds(hub.ingestor.publish([launch])) == ["accepted"]
    hub.tailer.catch_up()
    argv = ["query", "coverage", "--campaign", "c1", "--as-of", "2099-12-02"]
    beijing = run_cli(hub, capsys, *argv, "--time-zone", "Asia/Shanghai")
    assert "as of 2099-12-02 00:00:00 +08:00 (2099-12-01T16:00:00Z)" in beijing, beijing
    assert "as of 2099-12-02T00:00:00Z" in run_cli(hub, capsys, *argv)


def test_coverage_says_when_each_became_full_in_its_time_zone(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    # Covered at 12-01 23:00 UTC: 12-02 07:00 in Beijing, the day the office counts it on.
    launch = campaign("c2", [group("g2", pb.TIER_COUNTY, NIEJIAHE)], event_id="c2", seq=3)
    covering = visit(
        NIEJIAHE, "c2", "g2", event_id="v2", seq=4, occurred_at=at("2022-12-01T23:00:00")
    )
    assert kinds(hub.ingestor.publish([launch, covering])) == ["accepted", "accepted"]
    hub.tailer.catch_up()
    argv = ["query", "coverage", "--campaign", "c2"]
    beijing = run_cli(hub, capsys, *argv, "--time-zone", "Asia/Shanghai")
    # The tier's, all tiers', the group's and the county's
    assert beijing.count("2022-12-02 07:00 +08:00") == 4, beijing
    assert "23:00" not in beijing
    utc = run_cli(hub, capsys, *argv)
    assert utc.count("2022-12-01 23:00Z") == 4, utc  # as before


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "--metric", "visits"],
        ["audit", "report", "--from", "2022-12-01", "--to", "2022-12-02"],
        ["query", "coverage", "--campaign", "c1"],
    ],
)
def test_a_bad_time_zone_exits_2_naming_it_on_every_command_taking_dates(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--time-zone", "Asia/Shangai", "--target", closed_port()])
    assert e.value.code == 2
    assert "--time-zone: unknown time zone 'Asia/Shangai'" in capsys.readouterr().err


def test_campaigns_lists_windows_in_the_time_zone_asked(
    hub: Hub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`duhub campaigns` took no zone: a campaign launched from a Beijing midnight was listed
    from '2022-10-31T16:00:00Z', beside another's whole UTC dates, and DUHUB_TIME_ZONE, which
    README says every command's zone comes from, changed nothing."""
    beijing = campaign(
        "bj",
        [group("g1", pb.TIER_COUNTY, NIEJIAHE)],
        starts_at=at("2022-10-31T16:00:00"),
        ends_at=at("2022-11-30T16:00:00"),
        event_id="bj",
        seq=3,
    )
    assert kinds(hub.ingestor.publish([beijing])) == ["accepted"]
    hub.tailer.catch_up()
    (utc,) = [x.split() for x in run_cli(hub, capsys, "campaigns").splitlines() if "bj " in x]
    assert utc[-2:] == ["2022-10-31T16:00:00Z", "2022-11-30T16:00:00Z"], utc
    monkeypatch.setenv("DUHUB_TIME_ZONE", "Asia/Shanghai")
    out = run_cli(hub, capsys, "campaigns")
    (row,) = [x.split() for x in out.splitlines() if "bj " in x]
    assert row[-2:] == ["2022-11-01", "2022-12-01"], out
    assert out.endswith("from and to in time zone Asia/Shanghai\n"), out
    # Not a midnight there: the moment, with the zone's offset.
    out = run_cli(hub, capsys, "campaigns", "--time-zone", "+05:00")
    (row,) = [x for x in out.splitlines() if "bj " in x]
    assert row.endswith("2022-10-31 21:00:00 +05:00  2022-11-30 21:00:00 +05:00"), out
