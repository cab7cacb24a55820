"""Ids with a NUL character in them, asked of a hub whose read model is PostgreSQL (which
refuses NUL in any text): refused INVALID_ARGUMENT naming the field, over gRPC and the
dashboard's JSON API alike, on every backend. They were UNKNOWN "Exception calling
application: A string literal cannot contain NUL (0x00) characters" over gRPC, and 500
(statistics: 400 blaming group_by) over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duhub.bootstrap import Hub, HubConfig
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.infra import fresh_database


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with fresh_database() as url:
        config = HubConfig(
            tmp_path_factory.mktemp("hub"), listen="127.0.0.1:0", http="127.0.0.1:0", db_url=url
        )
        h = Hub(config)
        h.start()
        try:
            yield h
        finally:
            h.stop(grace=0)


@pytest.fixture(scope="module")
def stub(hub: Hub) -> Iterator[query_pb2_grpc.QueryServiceStub]:
    with grpc.insecure_channel(hub.address) as channel:
        yield query_pb2_grpc.QueryServiceStub(channel)


# A short id with a NUL somewhere in it.
NUL_IDS = st.tuples(st.text(max_size=8), st.text(max_size=8)).map(lambda t: f"{t[0]}\x00{t[1]}")


def _grpc_calls(stub: query_pb2_grpc.QueryServiceStub, odd: str):  # type: ignore[no-untyped-def]
    q = qpb
    return [
        (stub.GetCampaign, q.GetCampaignRequest(campaign_id=odd), "campaign_id"),
        (stub.GetUnit, q.GetUnitRequest(unit_id=odd), "unit_id"),
        (stub.ListUnits, q.ListUnitsRequest(parent_id=odd), "parent_id"),
        (stub.GetCoverage, q.GetCoverageRequest(campaign_id=odd), "campaign_id"),
        (
            stub.GetCoverage,
            q.GetCoverageRequest(campaign_id="vax", scope_unit_id=odd),
            "scope_unit_id",
        ),
        (
            stub.GetStatistics,
            q.GetStatisticsRequest(metrics=["visits"], scope_unit_id=odd),
            "scope_unit_id",
        ),
        (stub.Explain, q.ExplainRequest(metric="visits", scope_unit_id=odd), "scope_unit_id"),
    ]


@settings(max_examples=15, deadline=None)
@given(odd=NUL_IDS)
def test_grpc_refuses_a_nul_in_an_id_naming_the_field(
    stub: query_pb2_grpc.QueryServiceStub, odd: str
) -> None:
    for call, req, field in _grpc_calls(stub, odd):
        with pytest.raises(grpc.RpcError) as e:
            call(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, e.value.details())
        assert e.value.details().startswith(f"{field}: "), e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        next(stub.WatchCoverage(qpb.WatchCoverageRequest(campaign_id=odd), timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()


@settings(max_examples=15, deadline=None)
@given(odd=NUL_IDS)
def test_the_json_api_refuses_a_nul_in_an_id_naming_the_parameter(hub: Hub, odd: str) -> None:
    assert hub.dashboard is not None
    quoted = urllib.parse.quote(odd, safe="")
    for path, param in [
        (f"api/campaigns/{quoted}", "campaignId"),
        (f"api/campaigns/{quoted}/coverage", "campaignId"),
        (f"api/campaigns/vax/coverage?scope={quoted}", "scope"),
        (f"api/units/{quoted}", "unitId"),
        (f"api/units?parent={quoted}", "parent"),
        (f"api/statistics?metric=visits&scope={quoted}", "scope"),
        (f"api/events?campaign={quoted}", "campaign"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(hub.dashboard.url + path, timeout=10)
        body = json.loads(e.value.read())
        assert e.value.code == 400, (path, body)
        assert body["error"].startswith(f"{param}: "), (path, body)
