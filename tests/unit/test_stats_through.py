"""`--through DATE`: a period's last day, inclusive, where `--to` (the contract's, exclusive)
lost a weekly report's Sunday when typed as the last day. And the title of `query stats`
saying a period of whole days as the dates it covers, so that the slip shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from duhub.cli.timeargs import day_started, whole_days
from duhub.timeparse import parse_time
from tests.unit.builders import at, kinds, talk

YIDU, NIEJIAHE = "420581", "420581101"
BEIJING = ["--time-zone", "Asia/Shanghai"]
# The week of 3月4日 (Monday) to 3月10日 (Sunday), 2024.
WEEK = ["--from", "2024-03-04", *BEIJING]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(HubConfig(Path(tmp_path_factory.mktemp("hub")), listen="127.0.0.1:0", http=""))
    h.start()
    try:
        events = [
            # Monday 09:00 and Sunday 20:00 in Beijing; the next Monday 09:00, after the week.
            talk(NIEJIAHE, 2, occurred_at=at("2024-03-04T01:00:00"), event_id="t1", seq=1),
            talk(NIEJIAHE, 3, occurred_at=at("2024-03-10T12:00:00"), event_id="t2", seq=2),
            talk(NIEJIAHE, 5, occurred_at=at("2024-03-11T01:00:00"), event_id="t3", seq=3),
        ]
        assert set(kinds(h.ingestor.publish(events))) == {"accepted"}
        h.tailer.catch_up()
        yield h
    finally:
        h.stop(grace=0)


def run(hub: Hub, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([*argv, "--target", hub.address])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def stats(hub: Hub, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """Return the title and the figure of talk_persons in Yidu."""
    args = ["query", "stats", "--metric", "talk_persons", "--scope", YIDU, *argv]
    code, out, err = run(hub, capsys, *args)
    assert code == 0, err
    lines = out.splitlines()
    return lines[0], lines[-1].split()[-1]


def test_through_counts_the_last_day_and_the_title_says_the_dates(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    title, figure = stats(hub, capsys, *WEEK, "--through", "2024-03-10")
    assert figure == "5"  # Monday's 2 and Sunday's 3
    assert "event time 2024-03-04 to 2024-03-10 (7 days)" in title, title
    # The same period as the contract's --to the next day, said the same way.
    assert stats(hub, capsys, *WEEK, "--to", "2024-03-11") == (title, "5")
    title, _ = stats(hub, capsys, "--from", "2024-03-10", "--through", "2024-03-10", *BEIJING)
    assert "event time 2024-03-10 to 2024-03-10 (1 day)" in title, title


def test_the_title_shows_the_day_a_to_of_the_last_day_left_out(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    title, figure = stats(hub, capsys, *WEEK, "--to", "2024-03-10")
    assert figure == "2"  # Sunday's 3 not counted, and the title says which days were
    assert "event time 2024-03-04 to 2024-03-09 (6 days)" in title, title


def test_json_is_the_answer_to_the_same_request(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["query", "stats", "--metric", "talk_persons", "--scope", YIDU, *WEEK, "--json"]
    code, through, err = run(hub, capsys, *args, "--through", "2024-03-10")
    assert code == 0, err
    assert through == run(hub, capsys, *args, "--to", "2024-03-11")[1]
    assert json.loads(through)["rows"][0]["values"] == {"talk_persons": "5"}


def test_a_period_not_of_whole_days_is_shown_half_open_as_given(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    # 00:00 UTC is 08:00 in Beijing: no midnight there.
    window = ["--from", "2024-03-04T00:00:00Z", "--to", "2024-03-11"]
    title, _ = stats(hub, capsys, *window, *BEIJING)
    assert "event time [2024-03-04T00:00:00Z .. 2024-03-11)" in title, title
    # In UTC (no --time-zone) it is a midnight; noon is none.
    title, _ = stats(hub, capsys, "--from", "2024-03-04T00:00:00Z", "--through", "2024-03-10")
    assert "event time 2024-03-04 to 2024-03-10 (7 days)" in title, title
    title, _ = stats(hub, capsys, "--from", "2024-03-04T12:00:00Z", "--through", "2024-03-10")
    assert "event time [2024-03-04T12:00:00Z .. 2024-03-10]" in title, title
    title, _ = stats(hub, capsys, "--through", "2024-03-10")  # unbounded before
    assert "event time [… .. 2024-03-10]" in title, title


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--to", "2024-03-11", "--through", "2024-03-10"], "argument --through: not allowed"),
        (["--through", "2024-03-10T00:00:00Z"], "--through: '2024-03-10T00:00:00Z' is not a date"),
        (["--through", "2024-02-30"], "--through: '2024-02-30' is not a date"),
        (["--through", "2024-03-03"], "--through: 2024-03-03 ends before --from 2024-03-04"),
    ],
)
def test_through_is_refused_by_name(
    hub: Hub, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    for command in (["query", "stats"], ["explain"]):
        args = [*command, "--metric", "talk_persons", *WEEK, *argv]
        code, _, err = run(hub, capsys, *args)
        assert code == 2 and said in err, (command, err)


def test_explain_takes_through_as_query_stats_does(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["explain", "--metric", "talk_persons", "--scope", YIDU, *WEEK]
    code, out, err = run(hub, capsys, *args, "--through", "2024-03-10")
    assert code == 0, err
    assert out.startswith("talk_persons = 5, from 2 events"), out
    code, _, err = run(hub, capsys, "explain", "--campaign", "c1", "--through", "2024-03-10")
    assert code == 2 and "--through: not with --campaign" in err, err


def test_whole_days_are_counted_in_the_zone() -> None:
    def days(start: str, end: str, zone: str) -> str | None:
        z = ZoneInfo(zone)
        return whole_days(parse_time(start, "from", z), parse_time(end, "to", z), z)

    # New York's week of 2024-03-10 has a 23-hour Sunday: still 7 days.
    assert days("2024-03-04", "2024-03-11", "America/New_York") == (
        "2024-03-04 to 2024-03-10 (7 days)"
    )
    # Santiago skips 2024-09-08's midnight: that day starts at 01:00, as a bare date reads it.
    santiago = ZoneInfo("America/Santiago")
    assert day_started(parse_time("2024-09-08", "to", santiago), santiago) == date(2024, 9, 8)
    assert days("2024-09-01", "2024-09-08", "America/Santiago") == (
        "2024-09-01 to 2024-09-07 (7 days)"
    )
    assert days("2024-03-04T00:00:00Z", "2024-03-11", "Asia/Shanghai") is None
