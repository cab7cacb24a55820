"""A hub keeps one answer cache for its gRPC service and its dashboard: the city's wall screen
and a script asking GetStatistics ask the same questions. Each kept its own before, so a
question was computed once for each, and the answers kept took up to twice the memory."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import grpc
import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(HubConfig(tmp_path_factory.mktemp("hub"), listen="127.0.0.1:0", http="127.0.0.1:0"))
    h.start()
    h.tailer.catch_up()
    try:
        yield h
    finally:
        h.stop(grace=0)


def dashboard_statistics(hub: Hub) -> dict:  # type: ignore[type-arg]
    assert hub.dashboard is not None
    conn = http.client.HTTPConnection(hub.dashboard.host, hub.dashboard.port, timeout=10)
    try:
        conn.request("GET", "/api/statistics?metric=visits&scope=420500&group_by=unit")
        reply = conn.getresponse()
        assert reply.status == 200
        return json.loads(reply.read())
    finally:
        conn.close()


def test_a_question_asked_over_grpc_is_not_computed_again_for_the_dashboard(hub: Hub) -> None:
    request = qpb.GetStatisticsRequest(
        metrics=["visits"], scope_unit_id="420500", group_by=qpb.GROUP_BY_UNIT
    )
    with grpc.insecure_channel(f"127.0.0.1:{hub.port}") as channel:
        answer = query_pb2_grpc.QueryServiceStub(channel).GetStatistics(request, timeout=10)
    assert hub.dashboard is not None
    kept = hub.dashboard.api.servicer.answers  # where the dashboard's answers are kept
    computed = kept.misses
    rows = dashboard_statistics(hub)["rows"]
    assert kept.misses == computed, "the dashboard computed the question again"
    assert len(rows) == len(answer.rows) == 14
