"""A replay is compared with the live read model where the live one stands: what the live
aggregator applied while the replay ran is replayed too, a live read model behind the replay
is waited for, and a real difference is still named."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import read_positions
from services.aggregate.replay import replay
from services.aggregate.verify import NotComparable, compare_with_live
from tests.unit.builders import YIDU_V1, Pipeline, at, hierarchy, visit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = Pipeline.open()
    p.clock.now = at("2023-02-01")
    p.publish(hierarchy(), allow_reference=True)
    _visits(p, 1, 5)
    p.tailer.catch_up()
    yield p
    p.close()


@pytest.fixture
def rebuilt(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    yield engine
    engine.dispose()


def _visits(p: Pipeline, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        p.clock.now += 1
        p.publish(
            [
                visit(
                    YIDU_V1,
                    event_id=f"v{seq}",
                    seq=seq,
                    occurred_at=at("2022-11-01") + seq * 3600 * 10**9,
                )
            ]
        )


def test_what_the_live_one_applied_meanwhile_is_replayed_too(
    hub: Pipeline, rebuilt: Engine
) -> None:
    replay(hub.log, rebuilt)
    _visits(hub, 6, 9)  # the live aggregator goes on while the replay finishes
    hub.tailer.catch_up()
    found = compare_with_live(hub.log, rebuilt, hub.engine, wait_s=30)
    assert found.equal, found.differing_figures
    assert found.caught_up == 4
    assert found.positions == read_positions(hub.engine) == read_positions(rebuilt)
    assert found.replayed == found.live


def test_a_live_read_model_behind_the_replay_is_waited_for(hub: Pipeline, rebuilt: Engine) -> None:
    _visits(hub, 6, 9)  # in the log, not applied to the live read model yet
    replay(hub.log, rebuilt)
    with pytest.raises(NotComparable, match="stayed behind"):
        compare_with_live(hub.log, rebuilt, hub.engine, wait_s=0.3)
    catching_up = threading.Timer(0.3, hub.tailer.catch_up)
    catching_up.start()
    try:
        found = compare_with_live(hub.log, rebuilt, hub.engine, wait_s=30)
    finally:
        catching_up.join()
    assert found.equal and found.caught_up == 0


def test_a_real_difference_is_named(hub: Pipeline, rebuilt: Engine) -> None:
    replay(hub.log, rebuilt)
    with hub.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE rollups SET value = value + 1 WHERE scope_id = ? AND grain = 3 "
            "AND metric = 'visits'",
            (YIDU_V1,),
        )
    found = compare_with_live(hub.log, rebuilt, hub.engine, wait_s=30)
    assert found.differing_tables == ["rollups"]
    [diff] = found.differing_figures
    assert (diff.scope_id, diff.metric, diff.left, diff.right) == (YIDU_V1, "visits", 6, 5)


def test_the_command_says_when_it_could_not_compare(hub: Pipeline, tmp_path: Path) -> None:
    _visits(hub, 6, 9)  # the live read model stays behind what the log holds
    args = [
        sys.executable,
        "-m",
        "duhub.cli.main",
        "replay",
        "--data-dir",
        str(hub.dir),
        "--into",
        f"sqlite:///{tmp_path / 'cli.db'}",
        "--wait",
        "0.3",
    ]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "not compared: the live read model stayed behind" in done.stderr
    # A copy no hub applies (an auditor's, a record inserted in it) never catches up: said.
    assert "If no hub is applying this log, it holds records the read model never saw" in (
        done.stderr
    )
    hub.tailer.catch_up()
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equal: the live figures are exactly what the log gives" in done.stdout
