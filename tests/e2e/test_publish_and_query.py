"""End to end: a real `duhub up` process, `duhub publish`, `duhub query --json`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.hubproc import HubProcess, duhub, duhub_json, stat_values

ROOT = Path(__file__).resolve().parents[2]


def line(event_id: str, source: str, seq: int, at: str, **payload: object) -> str:
    return json.dumps(
        {"eventId": event_id, "source": source, "seq": str(seq), "occurredAt": at, **payload},
        ensure_ascii=False,
    )


def scenario() -> list[str]:
    """A campaign and activity whose figures are worked out by hand in the tests below."""
    groups = [
        {"groupId": "tf", "name": "工作专班", "tier": "TIER_TASK_FORCE"},
        {
            "groupId": "c1",
            "name": "市本级第1督导组",
            "tier": "TIER_CITY",
            "targetUnitIds": ["420581", "420582"],
        },
        {
            "groupId": "c2",
            "name": "市本级第2督导组",
            "tier": "TIER_CITY",
            "targetUnitIds": ["420583"],
        },
        {
            "groupId": "n1",
            "name": "宜都市督导组",
            "tier": "TIER_COUNTY",
            "targetUnitIds": ["420581101", "420581102", "420581103"],
        },
    ]
    v = "supervisionVisit"
    return [
        line(
            "k1",
            "420500",
            1,
            "2022-11-01T00:00:00Z",
            campaignLaunched={
                "campaignId": "vax",
                "name": "疫苗接种督导",
                "area": "vaccination",
                "startsAt": "2022-11-01T00:00:00Z",
                "endsAt": "2022-12-01T00:00:00Z",
                "groups": groups,
            },
        ),
        # City groups: c1 covers both targets; c2 visits before the window (covers nothing).
        line(
            "k2",
            "420500",
            2,
            "2022-11-02T01:00:00Z",
            **{
                v: {"campaignId": "vax", "groupId": "c1", "unitId": "420581", "area": "vaccination"}
            },
        ),
        line(
            "k3",
            "420500",
            3,
            "2022-11-20T01:00:00Z",
            **{
                v: {"campaignId": "vax", "groupId": "c1", "unitId": "420582", "area": "vaccination"}
            },
        ),
        line(
            "k4",
            "420500",
            4,
            "2022-10-31T23:59:59Z",
            **{
                v: {"campaignId": "vax", "groupId": "c2", "unitId": "420583", "area": "vaccination"}
            },
        ),
        # County group n1: two targets covered (one twice), one visit to a non-target village.
        line(
            "y1",
            "420581",
            1,
            "2022-11-03T02:00:00Z",
            **{
                v: {
                    "campaignId": "vax",
                    "groupId": "n1",
                    "unitId": "420581101",
                    "area": "vaccination",
                }
            },
        ),
        line(
            "y2",
            "420581",
            2,
            "2022-11-04T02:00:00Z",
            **{
                v: {
                    "campaignId": "vax",
                    "groupId": "n1",
                    "unitId": "420581101",
                    "area": "vaccination",
                }
            },
        ),
        line(
            "y3",
            "420581",
            3,
            "2022-11-05T02:00:00Z",
            **{
                v: {
                    "campaignId": "vax",
                    "groupId": "n1",
                    "unitId": "420581102",
                    "area": "vaccination",
                }
            },
        ),
        line(
            "y4",
            "420581",
            4,
            "2022-11-05T03:00:00Z",
            **{
                v: {
                    "campaignId": "vax",
                    "groupId": "n1",
                    "unitId": "420581101201",
                    "area": "vaccination",
                }
            },
        ),
        # Problems: p1 found in Nov and rectified in Dec; p2 found and rectified in Nov.
        line(
            "y5",
            "420581",
            5,
            "2022-11-06T00:00:00Z",
            problemFound={"problemId": "p1", "unitId": "420581101201", "area": "ecology"},
        ),
        line(
            "y6",
            "420581",
            6,
            "2022-11-07T00:00:00Z",
            problemFound={"problemId": "p2", "unitId": "420581102", "area": "epidemic"},
        ),
        line("y7", "420581", 7, "2022-11-08T00:30:00Z", problemRectified={"problemId": "p2"}),
        line("y8", "420581", 8, "2022-12-02T00:00:00Z", problemRectified={"problemId": "p1"}),
        line(
            "y9",
            "420581",
            9,
            "2022-11-09T00:00:00Z",
            accountabilityImposed={"unitId": "420581101", "area": "epidemic", "persons": 4},
        ),
        line(
            "y10",
            "420581",
            10,
            "2022-11-09T00:00:00Z",
            sanctionImposed={"unitId": "420581", "area": "ecology", "persons": 2},
        ),
        line(
            "y11",
            "420581",
            11,
            "2022-11-10T00:00:00Z",
            talkHeld={"unitId": "420581", "kind": "TALK_KIND_TOP_LEADER", "persons": 5},
        ),
        line(
            "y12",
            "420581",
            12,
            "2022-11-10T00:00:00Z",
            talkHeld={
                "unitId": "420581101",
                "area": "ecology",
                "kind": "TALK_KIND_ADMONISHMENT",
                "persons": 1,
            },
        ),
        line(
            "d1",
            "420582",
            1,
            "2022-11-11T00:00:00Z",
            recommendationIssued={"letterId": "L1", "unitId": "420582", "area": "grain"},
        ),
        line(
            "d2",
            "420582",
            2,
            "2022-11-11T00:00:00Z",
            regulationImproved={"unitId": "420582", "area": "grain", "count": 3},
        ),
        line(
            "d3",
            "420582",
            3,
            "2022-11-12T00:00:00Z",
            sanctionImposed={"unitId": "420582", "area": "grain", "persons": 7},
        ),
    ]


def finishing_visits() -> list[str]:
    """The two visits that cover the scenario's last targets: c2's county, then n1's township."""
    v = {"campaignId": "vax", "area": "vaccination"}
    return [
        line(
            "k5",
            "420500",
            5,
            "2022-11-21T00:00:00Z",
            supervisionVisit={**v, "groupId": "c2", "unitId": "420583"},
        ),
        line(
            "y13",
            "420581",
            13,
            "2022-11-22T00:00:00Z",
            supervisionVisit={**v, "groupId": "n1", "unitId": "420581103"},
        ),
    ]


def publish(hub: HubProcess, tmp_path: Path, lines: list[str], name: str = "events.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return duhub(hub.address, "publish", str(path), "--json")


ALL = (
    "visits,problems_found,problems_rectified,problems_open,accountability_persons,"
    "sanctioned_persons,talk_persons,talk_persons_top_leader,talk_persons_admonishment,"
    "recommendations,regulations_improved"
)


def test_publish_then_query_gives_exact_figures(hub: HubProcess, tmp_path: Path) -> None:
    done = publish(hub, tmp_path, scenario())
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["accepted"], report["visible"]) == (19, True)

    city = stat_values(hub.address, "--metric", ALL)
    assert city == {
        "visits": 7,
        "problems_found": 2,
        "problems_rectified": 2,
        "problems_open": 0,
        "accountability_persons": 4,
        "sanctioned_persons": 9,
        "talk_persons": 6,
        "talk_persons_top_leader": 5,
        "talk_persons_admonishment": 1,
        "recommendations": 1,
        "regulations_improved": 3,
    }

    # November only: p1's rectification (in December) is outside; p1 is open at the end.
    nov = stat_values(
        hub.address,
        "--metric",
        "problems_found,problems_rectified,problems_open",
        "--from",
        "2022-11-01",
        "--to",
        "2022-12-01",
    )
    assert nov == {"problems_found": 2, "problems_rectified": 1, "problems_open": 1}

    # A rectification counts for its problem's unit and area.
    eco = stat_values(
        hub.address,
        "--metric",
        "problems_rectified,talk_persons",
        "--scope",
        "420581101",
        "--area",
        "ecology",
    )
    assert eco == {"problems_rectified": 1, "talk_persons": 1}
    # An event without an area counts only when no area is asked for.
    assert stat_values(hub.address, "--metric", "talk_persons", "--area", "ecology") == {
        "talk_persons": 1
    }

    # Sub-hour edges: the problem rectified at 00:30 falls in [00:15, 00:45).
    edge = stat_values(
        hub.address,
        "--metric",
        "problems_rectified",
        "--from",
        "2022-11-08T00:15:00Z",
        "--to",
        "2022-11-08T00:45:00Z",
    )
    assert edge == {"problems_rectified": 1}

    by_unit = duhub_json(
        hub.address, "query", "stats", "--metric", "visits,sanctioned_persons", "--group-by", "unit"
    )
    rows = {r["key"]: {k: int(x) for k, x in r["values"].items()} for r in by_unit["rows"]}
    assert len(rows) == 14
    assert rows["420581"] == {"visits": 5, "sanctioned_persons": 2}
    assert rows["420582"] == {"visits": 1, "sanctioned_persons": 7}
    assert rows["420583"] == {"visits": 1, "sanctioned_persons": 0}

    by_month = duhub_json(
        hub.address,
        "query",
        "stats",
        "--metric",
        "problems_open,visits",
        "--from",
        "2022-10-01",
        "--to",
        "2023-01-01",
        "--group-by",
        "month",
    )
    assert [
        (r["key"], int(r["values"]["visits"]), int(r["values"]["problems_open"]))
        for r in by_month["rows"]
    ] == [("2022-10-01", 1, 0), ("2022-11-01", 6, 1), ("2022-12-01", 0, 0)]


def test_coverage_counts_each_target_once_inside_the_window(
    hub: HubProcess, tmp_path: Path
) -> None:
    assert publish(hub, tmp_path, scenario()).returncode == 0
    cov = duhub_json(hub.address, "query", "coverage", "--campaign", "vax")
    assert cov["full"] is False
    groups = {g["groupId"]: g for g in cov["groups"]}
    assert (groups["c1"]["targets"], groups["c1"]["covered"]) == (2, 2)
    assert groups["c1"]["full"] is True
    assert groups["c1"]["fullAt"] == "2022-11-20T01:00:00Z"
    assert groups["c2"]["covered"] == 0
    assert groups["c2"]["uncoveredUnitIds"] == ["420583"]
    assert (groups["n1"]["targets"], groups["n1"]["covered"]) == (3, 2)
    assert groups["n1"]["uncoveredUnitIds"] == ["420581103"]
    assert groups["tf"]["targets"] == 0 and groups["tf"]["ratio"] == 1.0
    tiers = {t["tier"]: t for t in cov["tiers"]}
    assert (tiers["TIER_CITY"]["targets"], tiers["TIER_CITY"]["covered"]) == (3, 2)
    assert (tiers["TIER_COUNTY"]["targets"], tiers["TIER_COUNTY"]["covered"]) == (3, 2)

    scoped = duhub_json(hub.address, "query", "coverage", "--campaign", "vax", "--scope", "420582")
    scoped_groups = {g["groupId"]: g for g in scoped["groups"]}
    assert (scoped_groups["c1"]["targets"], scoped_groups["c1"]["covered"]) == (1, 1)
    assert scoped_groups["n1"]["targets"] == 0

    # Finishing the last targets makes the campaign full.
    more = finishing_visits()
    assert publish(hub, tmp_path, more, "more.jsonl").returncode == 0
    cov = duhub_json(hub.address, "query", "coverage", "--campaign", "vax")
    assert cov["full"] is True
    assert all(t["full"] for t in cov["tiers"])


def test_the_coverage_on_a_given_day(hub: HubProcess, tmp_path: Path) -> None:
    """--on DAY counts the visits that occurred before the day's end (event time), in
    --time-zone; --occurred-before a moment; both at once, or a day that is none, exit 2."""
    assert publish(hub, tmp_path, scenario()).returncode == 0

    def covered(*when: str) -> dict[str, int]:
        cov = duhub_json(hub.address, "query", "coverage", "--campaign", "vax", *when)
        return {g["groupId"]: g["covered"] for g in cov["groups"] if g["targets"]}

    # c1's targets at 11-02 01:00 and 11-20 01:00; n1's at 11-03 02:00 and 11-05 02:00 (UTC).
    assert covered("--on", "2022-11-04") == {"c1": 1, "c2": 0, "n1": 1}
    assert covered("--on", "2022-11-05") == {"c1": 1, "c2": 0, "n1": 2}
    # In Beijing 11-05 ends at 11-05T16:00Z, after n1's second target; in UTC-5 11-04 ends at
    # 11-05T05:00Z, after it too.
    assert covered("--on", "2022-11-04", "--time-zone", "Asia/Shanghai")["n1"] == 1
    assert covered("--on", "2022-11-04", "--time-zone", "-05:00")["n1"] == 2
    assert covered("--occurred-before", "2022-11-05T02:00:00Z")["n1"] == 1
    assert covered("--occurred-before", "2022-11-05T02:00:00.000000001Z")["n1"] == 2
    day = duhub_json(hub.address, "query", "coverage", "--campaign", "vax", "--on", "2022-11-20")
    assert day["occurredBefore"] == "2022-11-21T00:00:00Z"
    c1 = next(g for g in day["groups"] if g["groupId"] == "c1")
    assert c1["full"] is True and c1["fullAt"] == "2022-11-20T01:00:00Z"

    table = duhub(hub.address, "query", "coverage", "--campaign", "vax", "--on", "2022-11-04")
    assert table.returncode == 0, table.stderr
    assert "visits before 2022-11-05T00:00:00Z (on 2022-11-04)" in table.stdout.splitlines()[0]
    both = duhub(
        hub.address, "query", "coverage", "--campaign", "vax", "--on", "2022-11-04",
        "--occurred-before", "2022-11-05",
    )  # fmt: skip
    assert both.returncode == 2 and "--occurred-before" in both.stderr
    for bad in ("2022-11-31", "2022-11-04T00:00:00Z"):
        said = duhub(hub.address, "query", "coverage", "--campaign", "vax", "--on", bad)
        assert said.returncode == 2 and said.stderr.startswith(f"duhub: --on: '{bad}'"), said


def test_explain_names_the_visit_that_covered_each_target(hub: HubProcess, tmp_path: Path) -> None:
    """Lineage of coverage: each covered target with its earliest covering visit (n1's first
    village was visited twice: y1 covered it), as `query coverage` counts them."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    lineage = duhub_json(hub.address, "explain", "--campaign", "vax")
    assert (lineage["targets"], lineage["covered"]) == (6, 4)
    assert [(v["groupId"], v["unitId"], v["eventId"], v["seq"]) for v in lineage["visits"]] == [
        ("c1", "420581", "k2", "2"),
        ("c1", "420582", "k3", "3"),
        ("n1", "420581101", "y1", "1"),
        ("n1", "420581102", "y3", "3"),
    ]
    y1 = lineage["visits"][2]
    assert (y1["source"], y1["occurredAt"]) == ("420581", "2022-11-03T02:00:00Z")

    table = duhub(
        hub.address, "explain", "--campaign", "vax", "--group", "n1", "--on", "2022-11-04"
    )
    assert table.returncode == 0, table.stderr
    head, *rest = table.stdout.splitlines()
    assert head == ("vax group n1: 1 of 3 targets covered, by visits before 2022-11-05T00:00:00Z")
    assert [r.split()[:6] for r in rest[2:]] == [
        ["n1", "420581101", "聂家河镇", "y1", "420581", "1"]
    ]
    # In the zone asked, the times too (as `query coverage` shows its moments there), each
    # still one --as-of takes.
    beijing = duhub(hub.address, "explain", "--campaign", "vax", "--group", "n1",
                    "--on", "2022-11-04", "--time-zone", "Asia/Shanghai")  # fmt: skip
    assert beijing.stdout.splitlines()[3].split()[6] == "2022-11-03T10:00:00+08:00", beijing
    # Nothing covered: the head says so, and no table without a row follows.
    none = duhub(hub.address, "explain", "--campaign", "vax", "--group", "c2")
    assert none.stdout.splitlines() == ["vax group c2: 0 of 1 targets covered"], none.stdout

    # Options of the other kind of explanation, or a group the campaign lacks, are refused.
    for args, named in (
        (("--campaign", "vax", "--area", "ecology"), "--area"),
        (("--metric", "visits", "--group", "n1"), "--group"),
        (("--metric", "visits", "--on", "2022-11-04"), "--on"),
    ):
        said = duhub(hub.address, "explain", *args)
        assert said.returncode == 2 and said.stderr.startswith(f"duhub: {named}: not with"), said
    said = duhub(hub.address, "explain", "--campaign", "vax", "--group", "zz")
    assert said.returncode == 2 and "group_id: campaign 'vax' has no group 'zz'" in said.stderr


def test_duplicates_and_rejections_change_nothing(hub: HubProcess, tmp_path: Path) -> None:
    events = scenario()
    assert publish(hub, tmp_path, events).returncode == 0
    before = stat_values(hub.address, "--metric", ALL)

    bad = [
        events[4],  # the same event again: a duplicate
        line(
            "y1",
            "420581",
            99,
            "2022-11-03T02:00:00Z",
            accountabilityImposed={"unitId": "420581101", "area": "epidemic", "persons": 1},
        ),  # reused id, other content
        line(
            "z1",
            "420581",
            1,
            "2022-11-03T02:00:00Z",
            accountabilityImposed={"unitId": "420581101", "area": "epidemic", "persons": 1},
        ),  # reused seq
        line(
            "z2",
            "420581",
            50,
            "2022-11-03T02:00:00Z",
            accountabilityImposed={"unitId": "420582", "area": "epidemic", "persons": 1},
        ),  # outside its county
        line(
            "z3",
            "420581",
            51,
            "2022-11-03T02:00:00Z",
            accountabilityImposed={"unitId": "420581101", "area": "epidemic", "persons": 0},
        ),  # persons < 1
        line("z4", "420581", 52, "2022-11-03T02:00:00Z", problemRectified={"problemId": "p2"}),
        '{"eventId": "z5", "source": "420581", "seq": "53", "occurredAt": "yesterday"}',
        "not json at all",
    ]
    done = publish(hub, tmp_path, bad, "bad.jsonl")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["accepted"], report["duplicate"], report["rejected"]) == (0, 1, 7)
    fields = [r["field"] for r in report["rejections"]]
    assert fields[:5] == [
        "event_id",
        "seq",
        "accountability_imposed.unit_id",
        "accountability_imposed.persons",
        "problem_rectified.problem_id",
    ]
    assert "occurredAt" in report["rejections"][5]["reason"]
    assert report["rejections"][6]["line"] == 8

    assert stat_values(hub.address, "--metric", ALL) == before


def test_human_output_shows_chinese_names_and_exit_codes(hub: HubProcess, tmp_path: Path) -> None:
    assert publish(hub, tmp_path, scenario()).returncode == 0
    table = duhub(hub.address, "query", "stats", "--metric", "visits", "--group-by", "unit")
    assert table.returncode == 0
    assert "宜都市" in table.stdout and "宜昌高新区" in table.stdout
    cov = duhub(hub.address, "query", "coverage", "--campaign", "vax")
    assert "宜都市督导组" in cov.stdout and "当阳市" in cov.stdout
    unknown = duhub(hub.address, "query", "coverage", "--campaign", "nope")
    assert unknown.returncode == 2 and "campaign_id" in unknown.stderr
    bad_metric = duhub(hub.address, "query", "stats", "--metric", "vists")
    assert bad_metric.returncode == 2 and "metrics" in bad_metric.stderr
    nobody = duhub("127.0.0.1:1", "query", "stats", "--metric", "visits")
    assert nobody.returncode == 3


def test_quickstart_example_from_the_readme(hub: HubProcess) -> None:
    done = duhub(hub.address, "publish", str(ROOT / "examples/quickstart.jsonl"))
    assert done.returncode == 1  # the example shows one rejection on purpose
    assert "7 accepted, 1 duplicate, 1 rejected" in done.stdout
    assert "sanction_imposed.unit_id" in done.stdout
    # The README's coverage "as it stood that day": the city group's visit on 11-02 (Beijing),
    # the county group's only on 11-03.
    now = duhub_json(hub.address, "query", "coverage", "--campaign", "vax-2022")
    then = duhub_json(
        hub.address, "query", "coverage", "--campaign", "vax-2022",
        "--on", "2022-11-02", "--time-zone", "Asia/Shanghai",
    )  # fmt: skip
    tiers = [{t["tier"]: t["covered"] for t in c["tiers"]} for c in (now, then)]
    assert [x["TIER_CITY"] for x in tiers] == [1, 1]
    assert [x["TIER_COUNTY"] for x in tiers] == [1, 0]
    # The README's "which visit covered each target": one line per covered target.
    lineage = duhub_json(hub.address, "explain", "--campaign", "vax-2022")
    assert lineage["covered"] == sum(tiers[0].values()) == len(lineage["visits"])
    assert all(v["eventId"] and v["source"] for v in lineage["visits"])


def test_an_area_no_event_has_is_pointed_out(hub: HubProcess, tmp_path: Path) -> None:
    """Areas are open keys: a misspelt one answers 0, which read as "no such work". When every
    figure is 0 the command asks whether any event has the area at all, and says so if none."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    note = "no event the hub holds (within your scope) has area 'ecolgy'"
    typo = duhub(hub.address, "query", "stats", "--metric", "visits", "--area", "ecolgy")
    assert typo.returncode == 0 and note in typo.stderr, typo.stderr
    as_json = duhub(
        hub.address, "query", "stats", "--metric", "visits", "--area", "ecolgy", "--json"
    )
    assert note in as_json.stderr and json.loads(as_json.stdout)["rows"]
    # A real area with nothing in the window asked (the scenario's ecology talk is in
    # November 2022): 0, and no note.
    empty = duhub(
        hub.address, "query", "stats", "--metric", "visits", "--area", "ecology",
        "--from", "2021-01-01", "--to", "2021-02-01",
    )  # fmt: skip
    assert empty.returncode == 0 and "note" not in empty.stderr, empty.stderr
    found = duhub(hub.address, "query", "stats", "--metric", "talk_persons", "--area", "ecology")
    assert found.returncode == 0 and found.stderr == "", found.stderr


def test_units_of_a_unit_without_any_says_so(hub: HubProcess) -> None:
    """A village has no units under it: an empty table alone read as a fault."""
    townships = duhub_json(hub.address, "units", "420581")["units"]
    villages = duhub_json(hub.address, "units", townships[0]["unitId"])["units"]
    village = villages[0]["unitId"]
    said = duhub(hub.address, "units", village)
    assert said.returncode == 0 and said.stdout == "", said.stdout
    assert said.stderr == f"no unit lies under {village} (a village has none)\n", said.stderr
    listed = duhub(hub.address, "units", "420581")
    assert listed.stderr == "" and townships[0]["unitId"] in listed.stdout
