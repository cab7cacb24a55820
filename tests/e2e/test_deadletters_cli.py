"""`duhub deadletters` against the embedded hub run as a user runs it, with bearer tokens: a
county's node lists its own dead letters only, the city's every one. Before 2026-12-07 no
command listed them, and the embedded hub has no dead-letter topic at all."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.hubproc import DUHUB, HubProcess
from tests.unit.builders import CITY, DANG, YIDU, Pipeline
from tests.unit.refused import refuse

AUTH_ENV = ("DUHUB_TOKEN", "DUHUB_TLS_DIR", "DUHUB_CERT", "DUHUB_TARGET", "DUHUB_TIME_ZONE")


def run(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in AUTH_ENV}
    if token:
        env["DUHUB_TOKEN"] = token
    return subprocess.run([DUHUB, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, dict[str, str]]]:
    """An embedded hub whose log holds refused records, with a token per caller."""
    pki = tmp_path_factory.mktemp("pki")
    tokens = {}
    for name, who in (("yidu", ["--node", YIDU]), ("city", ["--node", CITY])):
        done = run("certs", "token", "--dir", str(pki), *who)
        assert done.returncode == 0, done.stderr
        tokens[name] = done.stdout.strip()
    data = tmp_path_factory.mktemp("hub") / "data"
    HubProcess(data).stop()  # its log and read model, with the shipped reference
    p = Pipeline.open(data)
    refuse(p)  # behind ingest's back, as no client can: the log is the hub's own
    p.log.close()
    p.engine.dispose()
    proc = HubProcess(data, "--tokens", str(pki / "tokens"))
    yield proc, tokens
    proc.stop()


def listed(hub: tuple[HubProcess, dict[str, str]], who: str, *args: str) -> dict:  # type: ignore[type-arg]
    proc, tokens = hub
    done = run("deadletters", "--target", proc.address, "--json", *args, token=tokens[who])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_county_lists_its_own_dead_letters_and_the_city_every_one(hub) -> None:  # type: ignore[no-untyped-def]
    mine = listed(hub, "yidu")
    assert [d["eventId"] for d in mine["deadLetters"]] == ["yidu-5", "yidu-4"]
    assert {d["source"] for d in mine["deadLetters"]} == {YIDU}
    every = listed(hub, "city")
    assert [d.get("eventId", "") for d in every["deadLetters"]] == [
        "yidu-5",
        "dang-3",
        "yidu-4",
        "",
    ]
    assert every["deadLetters"][0]["recordedAt"] == "2023-02-01T03:00:00Z"
    assert listed(hub, "city", "--source", DANG)["deadLetters"][0]["eventId"] == "dang-3"
    since = listed(hub, "city", "--since", "2023-02-01T10:00:00+08:00")
    assert [d["eventId"] for d in since["deadLetters"]] == ["yidu-5", "dang-3"]


def test_a_county_asking_for_another_countys_is_denied(hub) -> None:  # type: ignore[no-untyped-def]
    proc, tokens = hub
    done = run("deadletters", "--target", proc.address, "--source", DANG, token=tokens["yidu"])
    assert done.returncode == 5, done.stdout + done.stderr
    assert "PERMISSION_DENIED: source: unit '420582' lies outside the scope" in done.stderr


def test_the_table_names_each_by_log_position_time_and_reason(hub) -> None:  # type: ignore[no-untyped-def]
    proc, tokens = hub
    done = run(
        "deadletters",
        "--target",
        proc.address,
        "--time-zone",
        "Asia/Shanghai",
        "--limit",
        "2",
        token=tokens["city"],
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "4 dead letters (the newest 2 listed)"
    assert lines[1].split() == ["recorded", "log", "event", "source", "reason"]
    assert lines[3].startswith("2023-02-01T11:00:00+08:00  0:")
    assert "yidu-5  420581  accountability_imposed.unit_id:" in lines[3]


def test_bad_arguments_exit_2_naming_the_option(hub) -> None:  # type: ignore[no-untyped-def]
    proc, tokens = hub
    for args, named in (
        (["--since", "yesterday"], "--since"),
        (["--limit", "-1"], "--limit"),
        (["--source", ""], "--source"),
        (["--time-zone", "Asia/Shangai"], "--time-zone"),
    ):
        done = run("deadletters", "--target", proc.address, *args, token=tokens["city"])
        assert done.returncode == 2, (args, done.stderr)
        assert named in done.stderr, (args, done.stderr)
