"""The query server in a whole in-process hub, asked as people and scripts ask it: `duhub query
stats` tables (the total row of a table grouped by unit is the scope's figure, events at the
scope unit itself included: they are in no child's row), and errors of bad questions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.main import main
from duhub.readmodel.statistics import statistics
from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.unit.builders import at, kinds, talk, ts

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


def test_too_many_periods_is_a_bad_question_naming_group_by(hub: Hub) -> None:
    """Bad input gets a clear error naming the field: not UNKNOWN, which the command line
    reads as 'no hub answered'."""
    hub.tailer.catch_up()  # the reference hierarchy: the city is known
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    req = qpb.GetStatisticsRequest(metrics=["visits"], group_by=qpb.GROUP_BY_DAY)
    getattr(req, "from").CopyFrom(ts(at("2001-01-01")))
    req.to.CopyFrom(ts(at("2030-01-01")))
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("group_by: more than 5000 periods")
