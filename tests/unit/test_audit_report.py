"""`duhub audit report` reads its rows and its total from one state of a live hub.

The report is two answers (by county, then the city's total). The tests commit events between
them, on an in-process hub taking events, and check that the report still adds up: its total
is the sum of its rows, for every metric."""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from duhub.audit.report import Unsettled, in_one_state, report_rows, request
from duhub.bootstrap import Hub
from duhub.cli.client import channel
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.e2e.test_publish_and_query import line, scenario
from tests.unit.test_http_api import eventually, publish, start_hub

YEAR_2022 = argparse.Namespace(
    from_="2022-01-01", to="2023-01-01", area=None, as_of=None, time_zone=None
)
SEQ = itertools.count(1000)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = start_hub(tmp_path)
    publish(h, scenario())
    try:
        yield h
    finally:
        h.stop(grace=0)


def positions(stub: query_pb2_grpc.QueryServiceStub) -> qpb.Progress:
    return stub.GetProgress(qpb.GetProgressRequest(), timeout=10)


def commit_a_visit(hub: Hub, stub: query_pb2_grpc.QueryServiceStub) -> None:
    """Publish a visit in 2022 to a county and wait until the hub has applied it."""
    before = positions(stub)
    seq = next(SEQ)
    publish(
        hub,
        [
            line(
                f"late-{seq}",
                "420581",
                seq,
                "2022-06-01T00:00:00Z",
                supervisionVisit={"unitId": "420581", "area": "vaccination"},
            )
        ],
    )

    def moved() -> None:
        assert positions(stub) != before

    eventually(moved)


class CommitsBetween:
    """The real stub, with a visit committed after the first of the two statistics answers
    of the first `times` attempts (the moment a live hub may commit)."""

    def __init__(self, hub: Hub, stub: query_pb2_grpc.QueryServiceStub, times: int) -> None:
        self.hub, self.stub, self.times = hub, stub, times
        self.calls = 0
        self.GetProgress = stub.GetProgress

    def GetStatistics(self, req: qpb.GetStatisticsRequest, **kw: Any) -> qpb.Statistics:
        reply = self.stub.GetStatistics(req, **kw)
        self.calls += 1
        if self.calls % 2 == 1 and self.calls // 2 < self.times:
            commit_a_visit(self.hub, self.stub)
        return reply


def settled(hub: Hub) -> query_pb2_grpc.QueryServiceStub:
    stub = query_pb2_grpc.QueryServiceStub(channel(hub.address))

    def applied() -> None:
        whole = request(YEAR_2022)
        whole.ClearField("group_by")
        try:  # the hub loads its reference hierarchy as it starts
            reply = stub.GetStatistics(whole, timeout=10)
        except grpc.RpcError as e:
            raise AssertionError(e.details()) from None
        assert reply.rows[0].values["visits"] == 7

    eventually(applied)
    return stub


def test_a_commit_between_the_rows_and_the_total_is_read_again(hub: Hub) -> None:
    stub = settled(hub)
    between = CommitsBetween(hub, stub, times=2)
    rows = report_rows(between, request(YEAR_2022)).rows  # type: ignore[arg-type]
    *counties, total = rows
    assert total["county"] == "total"
    for metric in total["values"]:
        assert total["values"][metric] == sum(r["values"][metric] for r in counties), metric
        assert total["events"][metric] == sum(r["events"][metric] for r in counties), metric
    # The report is of the state after both commits: the two late visits count.
    assert total["values"]["visits"] == 9
    assert {r["county"]: r for r in counties}["420581"]["values"]["visits"] >= 2
    assert between.calls == 6  # two attempts spoilt by a commit, the third read in one state


def test_a_hub_that_commits_under_every_attempt_is_reported_not_read(hub: Hub) -> None:
    stub = settled(hub)
    between = CommitsBetween(hub, stub, times=3)
    with pytest.raises(Unsettled, match="--as-of"):
        in_one_state(
            between,  # type: ignore[arg-type]
            lambda _: (
                between.GetStatistics(request(YEAR_2022), timeout=10),
                between.GetStatistics(request(YEAR_2022), timeout=10),
            ),
            attempts=3,
        )
    assert between.calls == 6


@pytest.mark.parametrize("out", ["DIR", "DIR/missing/report.csv", ""])
def test_a_report_file_that_cannot_be_written_is_refused_naming_out(
    hub: Hub, tmp_path: Path, out: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming a directory, or a file in one that does not exist, ended in a traceback
    (IsADirectoryError, exit 1) once the report was made; an empty --out (a script's unset
    variable) printed the report instead of writing it."""
    from duhub.cli.main import main

    hub.tailer.catch_up()
    out = out.replace("DIR", str(tmp_path))
    args = ["audit", "report", "--from", "2022-01-01", "--to", "2023-01-01", "--out", out]
    with pytest.raises(SystemExit) as done:
        main([*args, "--target", hub.address, "--format", "csv"])
    assert done.value.code == 2
    said = capsys.readouterr()
    assert "--out" in said.err and "Traceback" not in said.err, said.err
    assert said.out == ""


def test_the_citys_own_events_are_a_row_so_the_rows_add_up_to_the_total(hub: Hub) -> None:
    # A visit and a talk at the city itself (its command's own work) are in no county's row:
    # the total counted them and no row did, so the report's rows did not add up to it.
    stub = settled(hub)
    before = positions(stub)
    publish(
        hub,
        [
            line(
                "own-1",
                "420500",
                4000,
                "2022-06-01T00:00:00Z",
                talkHeld={"unitId": "420500", "kind": "TALK_KIND_TOP_LEADER", "persons": 9},
            ),
            line(
                "own-2",
                "420500",
                4001,
                "2022-06-01T00:00:00Z",
                supervisionVisit={"unitId": "420500", "area": "grain"},
            ),
        ],
    )
    hub.tailer.catch_up()
    assert positions(stub) != before
    *rows, total = report_rows(stub, request(YEAR_2022)).rows
    for metric in total["values"]:
        assert total["values"][metric] == sum(r["values"][metric] for r in rows), metric
        assert total["events"][metric] == sum(r["events"][metric] for r in rows), metric
    (own,) = [r for r in rows if r["county"] == "420500"]
    assert own["name"] == "宜昌市 本级"
    assert own["values"]["talk_persons_top_leader"] == 9 and own["values"]["visits"] == 1
    assert rows[0] is own  # first, as query stats --group-by unit lists it
    # With none of its own, no such row: a county list as before.
    quiet = request(YEAR_2022)
    quiet.area = "epidemic"
    assert all(r["county"] != "420500" for r in report_rows(stub, quiet).rows[:-1])


def test_an_empty_as_of_is_refused_naming_it_not_read_as_now(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from duhub.cli.main import main

    args = ["audit", "report", "--from", "2022-01-01", "--to", "2023-01-01", "--as-of", ""]
    with pytest.raises(SystemExit) as done:
        main([*args, "--target", "127.0.0.1:1"])
    assert done.value.code == 2
    assert "duhub: --as-of: '' is not a date" in capsys.readouterr().err


def test_a_report_for_excel_starts_with_a_byte_order_mark_and_a_plain_csv_does_not(
    hub: Hub, tmp_path: Path
) -> None:
    """Excel and WPS on a Chinese Windows read a CSV without a byte-order mark as GBK: the
    counties' names came out garbled (analyst review, 2026-12-07)."""
    from duhub.cli.main import main

    hub.tailer.catch_up()
    args = ["audit", "report", "--from", "2022-01-01", "--to", "2023-01-01"]
    for fmt in ("csv", "excel"):
        out = tmp_path / f"{fmt}.csv"
        assert main([*args, "--target", hub.address, "--format", fmt, "--out", str(out)]) == 0
    plain, excel = (tmp_path / "csv.csv").read_bytes(), (tmp_path / "excel.csv").read_bytes()
    assert excel == b"\xef\xbb\xbf" + plain
    assert "宜都市" in excel.decode("utf-8-sig")


def report_json(hub: Hub, tmp_path: Path, *more: str) -> dict[str, Any]:
    from duhub.cli.main import main

    out = tmp_path / "report.json"
    args = ["audit", "report", "--from", "2022-01-01", "--to", "2023-01-01", *more]
    assert main([*args, "--target", hub.address, "--format", "json", "--out", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_a_report_records_its_as_of_and_asked_again_with_it_every_figure_is_the_same(
    hub: Hub, tmp_path: Path
) -> None:
    """A published report named no state of the hub: events kept arriving and its figures
    could not be asked again (city office review, 2026-12-08)."""
    stub = settled(hub)
    published = report_json(hub, tmp_path)
    as_of = published["as_of"]
    assert as_of.endswith("Z") and published["again"].endswith(
        f"--as-of {as_of} --format json --target {hub.address}"
    )
    assert sum(r["values"]["visits"] for r in published["rows"][:-1]) == 7
    commit_a_visit(hub, stub)
    commit_a_visit(hub, stub)
    now = report_json(hub, tmp_path)
    assert now["rows"][-1]["values"]["visits"] == 9 and now["as_of"] > as_of
    again = report_json(hub, tmp_path, "--as-of", as_of)
    assert again["as_of"] == as_of
    assert again["rows"] == published["rows"]


def test_the_recorded_as_of_is_in_every_format_and_a_csv_still_reads_as_one_table(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from duhub.cli.main import main

    settled(hub)
    as_of = report_json(hub, tmp_path)["as_of"]
    args = ["audit", "report", "--from", "2022-01-01", "--to", "2023-01-01", "--target"]
    capsys.readouterr()
    assert main([*args, hub.address]) == 0
    table = capsys.readouterr().out
    assert f"as of {as_of} " in table
    assert f"--time-zone=UTC --as-of {as_of} --target {hub.address}" in table
    for fmt in ("csv", "excel"):
        assert main([*args, hub.address, "--format", fmt]) == 0
        said = capsys.readouterr()
        header, *rows = [r for r in csv.reader(io.StringIO(said.out.lstrip("\ufeff"))) if r]
        assert header[-1] == "as_of" and rows[-1][0] == "total"
        assert {r[-1] for r in rows} == {as_of}
        # The command to ask again goes beside the CSV, not into it.
        assert f"--as-of {as_of} --format {fmt}" in said.err
