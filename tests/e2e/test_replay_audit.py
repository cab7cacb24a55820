"""Ops and auditors on a real hub: replay equals live, as-of equals a replay cut at that
moment, lineage adds up to the figure, the hash chains verify."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.hubproc import HubProcess, duhub, duhub_json, serve, stat_values
from tests.e2e.test_publish_and_query import ALL, finishing_visits, line, publish, scenario
from tests.infra import fresh_database

METRICS = ALL.split(",")


def later() -> list[str]:
    """Activity after the first scenario: more visits, a problem, a rejected and a duplicate."""
    return [
        *finishing_visits(),
        line(
            "y14",
            "420581",
            14,
            "2022-11-23T00:00:00Z",
            problemFound={"problemId": "p3", "unitId": "420581103", "area": "epidemic"},
        ),
        line(
            "y15",
            "420581",
            15,
            "2022-11-24T00:00:00Z",
            accountabilityImposed={"unitId": "420582", "area": "epidemic", "persons": 9},
        ),
        finishing_visits()[1],
    ]


def backend_db(backend: tuple[str, ...]) -> str:
    return backend[backend.index("--db") + 1] if "--db" in backend else ""


@contextmanager
def replay_target(backend: tuple[str, ...], tmp_path: Path, name: str) -> Iterator[str]:
    if backend_db(backend):
        with fresh_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / name}"


def test_replay_as_of_lineage_and_audit(
    hub: HubProcess, tmp_path: Path, backend: tuple[str, ...]
) -> None:
    data = tmp_path / "data"  # the hub fixture's data dir
    assert publish(hub, tmp_path, scenario()).returncode == 0
    time.sleep(0.05)
    moment = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.05)
    assert publish(hub, tmp_path, later(), "later.jsonl").returncode == 1  # one rejection

    then = stat_values(hub.address, "--metric", ALL, "--as-of", moment)
    now = stat_values(hub.address, "--metric", ALL)
    assert then["visits"] == 7 and now["visits"] == 9
    assert (then["problems_open"], now["problems_open"]) == (0, 1)
    cov_then = duhub_json(hub.address, "query", "coverage", "--campaign", "vax", "--as-of", moment)
    cov_now = duhub_json(hub.address, "query", "coverage", "--campaign", "vax")
    assert (cov_then["full"], cov_now["full"]) == (False, True)

    # Replay from scratch equals the live read model, digest for digest.
    with replay_target(backend, tmp_path, "replay.db") as target:
        done = duhub(
            hub.address, "replay", "--data-dir", str(data), *backend, "--into", target, "--json"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["equal"] is True and report["digest"] == report["live_digest"]
        assert report["replayed"] > 1000  # the reference hierarchy and the scenario

    # Replay cut at the moment answers what as-of answered.
    with replay_target(backend, tmp_path, "cut.db") as cut:
        done = duhub(
            hub.address,
            "replay",
            "--data-dir",
            str(data),
            *backend,
            "--into",
            cut,
            "--until",
            moment,
            "--no-compare",
            "--json",
        )
        assert done.returncode == 0, done.stderr
        query = serve("query", "--db", cut, "--data-dir", str(tmp_path / "cutq"))
        try:
            assert stat_values(query.address, "--metric", ALL) == then
            by_month = (
                "--metric",
                ALL,
                "--from",
                "2022-10-01",
                "--to",
                "2023-01-01",
                "--group-by",
                "month",
            )
            assert (
                duhub_json(query.address, "query", "stats", *by_month)["rows"]
                == duhub_json(hub.address, "query", "stats", *by_month, "--as-of", moment)["rows"]
            )
            cov_cut = duhub_json(query.address, "query", "coverage", "--campaign", "vax")
            assert cov_cut["groups"] == cov_then["groups"]
        finally:
            query.stop()

    # Lineage: the events listed add up to the figure, as of any moment.
    for metric in METRICS:
        for extra in (
            (),
            ("--as-of", moment),
            ("--scope", "420581", "--area", "epidemic"),
            ("--from", "2022-11-05", "--to", "2022-11-21T00:30:00Z"),
        ):
            x = duhub_json(hub.address, "explain", "--metric", metric, *extra)
            figure = stat_values(hub.address, "--metric", metric, *extra)[metric]
            assert int(x["total"]) == figure, (metric, extra)
            assert sum(int(e["value"]) for e in x["events"]) == figure, (metric, extra)
            assert int(x["eventCount"]) == len(x["events"])

    # The hash chains of the stored log are intact; the checkpoint verifies.
    verify = duhub(hub.address, "audit", "verify", "--data-dir", str(data), *backend[:2], "--json")
    assert verify.returncode == 0, verify.stdout
    checked = json.loads(verify.stdout)
    assert checked["ok"] is True and checked["findings"] == []
    assert checked["seq_gaps"] == {"420581": [[14, 16]]} or checked["seq_gaps"] == {}
    again = duhub(
        hub.address,
        "audit",
        "verify",
        "--data-dir",
        str(data),
        *backend[:2],
        "--checkpoint",
        checked["checkpoint"],
    )
    assert again.returncode == 0 and "checkpoint matches" in again.stdout

    # The audit report: every county, every metric, with the events behind each figure.
    rep = duhub(
        hub.address,
        "audit",
        "report",
        "--from",
        "2022-01-01",
        "--to",
        "2023-01-01",
        "--format",
        "json",
    )
    rows = {r["county"]: r for r in json.loads(rep.stdout)["rows"]}
    assert len(rows) == 15  # 14 county-level units and the total
    assert rows["total"]["values"]["visits"] == 9 and rows["total"]["events"]["visits"] == 9
    assert rows["420582"]["values"]["sanctioned_persons"] == 7
    assert rows["420582"]["events"]["sanctioned_persons"] == 1
