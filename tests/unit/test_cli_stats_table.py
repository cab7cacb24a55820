"""`duhub query stats` as people read it: the total row of a table grouped by unit is the
scope's figure, events at the scope unit itself included (they are in no child's row)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from tests.unit.builders import kinds, talk

YIDU = "420581"  # a county of the reference hierarchy, with townships
NIEJIAHE = "420581101"  # one of its townships


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(HubConfig(tmp_path, listen="127.0.0.1:0", http=""))
    h.start()
    try:
        yield h
    finally:
        h.stop(grace=0)


def test_the_total_by_unit_holds_the_scope_units_own_events(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        talk(YIDU, 4, pb.TALK_KIND_TOP_LEADER, event_id="t1", source="420500", seq=1),
        talk(NIEJIAHE, 2, pb.TALK_KIND_OTHER, event_id="t2", source="420500", seq=2),
    ]
    assert kinds(hub.ingestor.publish(events)) == ["accepted", "accepted"]
    hub.tailer.catch_up()
    (row,) = statistics(hub.engine, ["talk_persons"], YIDU)
    assert row.values == {"talk_persons": 6}

    argv = ["query", "stats", "--metric", "talk_persons", "--scope", YIDU, "--group-by", "unit"]
    assert main([*argv, "--target", hub.address]) == 0
    table = capsys.readouterr().out.splitlines()
    (niejiahe,) = [x for x in table if x.startswith(NIEJIAHE)]
    assert niejiahe.split()[-1] == "2"
    (total,) = [x for x in table if x.startswith("total")]
    assert total.split()[-1] == "6", table
