"""The ops commands refuse bad arguments with exit 2 naming the option, and change nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.readmodel.digest import digest, table_digests
from tests.unit.builders import YIDU_V1, Pipeline, at, hierarchy, visit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = Pipeline.open()
    p.clock.now = at("2023-02-01")
    p.publish(hierarchy(), allow_reference=True)
    for seq in range(1, 4):
        p.clock.now += 10**9
        p.publish([visit(YIDU_V1, event_id=f"v{seq}", seq=seq, occurred_at=at("2022-11-01"))])
    p.tailer.catch_up()
    yield p
    p.close()


def duhub(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duhub.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def live_files(data: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in data.glob("readmodel.db*")}


@pytest.mark.parametrize("spelling", ["relative", "dotted"])
def test_replay_refuses_the_live_read_model_however_it_is_spelled(
    hub: Pipeline, spelling: str
) -> None:
    # Before, only the very string sqlite:///DATA/readmodel.db was refused: a relative path
    # to the same file passed, and --fresh deleted the live read model under the running hub.
    live = hub.dir / "readmodel.db"
    into = {
        "relative": f"sqlite:///{hub.dir.name}/readmodel.db",
        "dotted": f"sqlite:///{hub.dir}/./readmodel.db",
    }[spelling]
    before, figures = live_files(hub.dir), digest(table_digests(hub.engine))
    assert live.exists()
    done = duhub(
        "replay", "--data-dir", str(hub.dir), "--into", into, "--fresh", cwd=hub.dir.parent
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--into: must not be the live read model" in done.stderr
    assert live_files(hub.dir) == before
    assert digest(table_digests(hub.engine)) == figures


@pytest.mark.parametrize("limit", ["-1", "4294967296", "many"])
def test_explain_refuses_a_limit_out_of_range_naming_it(limit: str) -> None:
    # Before, a number outside uint32 reached the request: a ValueError traceback, exit 1.
    done = duhub("explain", "--metric", "visits", "--limit", limit, "--target", "127.0.0.1:1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --limit:" in done.stderr and "Traceback" not in done.stderr


def test_units_of_an_unknown_unit_is_not_found_naming_it(tmp_path: Path) -> None:
    # Before, 'duhub units nope' printed an empty table and exited 0, as for a village with
    # no children; every other question answers an unknown unit NOT_FOUND (exit 2).
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    try:
        done = duhub("units", "nope", "--target", hub.address)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "parent_id: unknown unit 'nope'" in done.stderr
        village = duhub("units", "420581101201", "--target", hub.address)  # no children
        assert village.returncode == 0, village.stdout + village.stderr
    finally:
        hub.stop(grace=0)
