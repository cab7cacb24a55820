"""One statistics request asked wrongly is refused in the same words whichever path answers
it: the rollups' figures, or a campaign's groups' (`campaign_id` set). The rules live once
(`readmodel/stats_rules.py`); here each is asked of both paths through the query service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.unit.builders import at, campaign, group, kinds, ts

YIDU = "420581"


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[query_pb2_grpc.QueryServiceStub]:
    hub = Hub(HubConfig(Path(tmp_path_factory.mktemp("hub")), listen="127.0.0.1:0", http=""))
    hub.start()
    try:
        # The campaign exists: a refusal is about the request, not an unknown campaign.
        event = campaign("c1", [group("city-1", pb.TIER_CITY, YIDU)], occurred_at=at("2022-10-01"))
        event.event_id, event.seq = "e1", 1
        assert kinds(hub.ingestor.publish([event])) == ["accepted"]
        hub.tailer.catch_up()
        yield query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    finally:
        hub.stop(grace=0)


def refusal(stub: query_pb2_grpc.QueryServiceStub, req: qpb.GetStatisticsRequest) -> str:
    with pytest.raises(grpc.RpcError) as e:
        stub.GetStatistics(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    return e.value.details()


def period(start: str, end: str) -> dict[str, object]:
    return {"from": ts(at(start)), "to": ts(at(end))}


# (rule, the request's fields, how its refusal starts): visits is a metric both paths count.
RULES = [
    ("no metric", {"metrics": []}, "metrics: name at least one metric"),
    ("unknown metric", {"metrics": ["vists"]}, "metrics: unknown metric 'vists'; known: visits"),
    ("area", {"metrics": ["visits"], "area": "Ecology"}, "area: must be a short lowercase key"),
    (
        "empty period",
        {"metrics": ["visits"], **period("2024-03-04", "2024-03-04")},
        "to: must be after from",
    ),
    (
        "period backwards",
        {"metrics": ["visits"], **period("2024-03-11", "2024-03-04")},
        "to: must be after from",
    ),
]


@pytest.mark.parametrize(("fields", "said"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_both_paths_refuse_the_same_request_in_the_same_words(
    stub: query_pb2_grpc.QueryServiceStub, fields: dict[str, object], said: str
) -> None:
    rollups = refusal(stub, qpb.GetStatisticsRequest(scope_unit_id=YIDU, **fields))
    groups = refusal(stub, qpb.GetStatisticsRequest(scope_unit_id=YIDU, campaign_id="c1", **fields))
    assert rollups.startswith(said), rollups
    assert groups == rollups
