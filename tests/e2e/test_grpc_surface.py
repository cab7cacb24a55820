"""The gRPC surface a stock client relies on: live coverage pushed on change, units and
campaigns, health and reflection."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.e2e.hubproc import HubProcess
from tests.e2e.test_publish_and_query import finishing_visits, line, publish, scenario


def watch(stub: query_pb2_grpc.QueryServiceStub, campaign: str, scope: str = ""):  # type: ignore[no-untyped-def]
    """Start WatchCoverage in a thread; return (queue of replies, the call)."""
    replies: queue.Queue[qpb.Coverage] = queue.Queue()
    call = stub.WatchCoverage(qpb.WatchCoverageRequest(campaign_id=campaign, scope_unit_id=scope))

    def pump() -> None:
        try:
            for reply in call:
                replies.put(reply)
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    threading.Thread(target=pump, daemon=True).start()
    return replies, call


def covered(c: qpb.Coverage, group: str) -> int:
    return next(g.covered for g in c.groups if g.group_id == group)


def test_watch_coverage_pushes_each_change(hub: HubProcess, tmp_path: Path) -> None:
    assert publish(hub, tmp_path, scenario()).returncode == 0
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
    replies, call = watch(stub, "vax")
    scoped, scoped_call = watch(stub, "vax", "420583")
    try:
        first = replies.get(timeout=10)
        assert (covered(first, "c2"), first.full) == (0, False)
        assert covered(scoped.get(timeout=10), "c2") == 0

        more = finishing_visits()[:1]
        assert publish(hub, tmp_path, more, "more.jsonl").returncode == 0
        pushed = replies.get(timeout=5)
        assert covered(pushed, "c2") == 1
        assert covered(scoped.get(timeout=5), "c2") == 1

        # A change that does not touch the campaign pushes nothing.
        other = [
            line(
                "y20",
                "420581",
                20,
                "2022-11-21T00:00:00Z",
                talkHeld={"unitId": "420581", "kind": "TALK_KIND_OTHER", "persons": 1},
            )
        ]
        assert publish(hub, tmp_path, other, "other.jsonl").returncode == 0
        assert replies.empty()
    finally:
        call.cancel()
        scoped_call.cancel()


def test_units_campaigns_health_and_reflection(hub: HubProcess, tmp_path: Path) -> None:
    assert publish(hub, tmp_path, scenario()).returncode == 0
    channel = grpc.insecure_channel(hub.address)
    stub = query_pb2_grpc.QueryServiceStub(channel)

    (city,) = stub.ListUnits(qpb.ListUnitsRequest(), timeout=10).units
    assert (city.unit_id, city.name, city.child_count) == ("420500", "宜昌市", 14)
    counties = stub.ListUnits(qpb.ListUnitsRequest(parent_id="420500"), timeout=10).units
    gaoxin = next(u for u in counties if u.name == "宜昌高新区")
    assert gaoxin.local_code and gaoxin.level == pb.LEVEL_COUNTY
    township = stub.GetUnit(qpb.GetUnitRequest(unit_id="420581101"), timeout=10)
    assert township.sample and township.parent_id == "420581"
    try:
        stub.GetUnit(qpb.GetUnitRequest(unit_id="nowhere"), timeout=10)
        raise AssertionError("an unknown unit must be NOT_FOUND")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND and "unit_id" in e.details()

    (campaign,) = stub.ListCampaigns(qpb.ListCampaignsRequest(), timeout=10).campaigns
    assert campaign.campaign_id == "vax" and [g.group_id for g in campaign.groups] == [
        "tf",
        "c1",
        "c2",
        "n1",
    ]
    assert (
        json_format.MessageToDict(
            stub.GetCampaign(qpb.GetCampaignRequest(campaign_id="vax"), timeout=10)
        )["startsAt"]
        == "2022-11-01T00:00:00Z"
    )

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "duhub.v1.IngestService", "duhub.v1.QueryService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service

    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {"duhub.v1.IngestService", "duhub.v1.QueryService", "grpc.health.v1.Health"} <= names


def test_reflection_v1_is_served_beside_v1alpha(hub: HubProcess) -> None:
    """grpc.reflection.v1 is the standard one (v1alpha is deprecated): a Go client's
    grpcreflect.NewClientV1, and tools that ask only v1, get answers. Before 2026-12-05 it was
    UNIMPLEMENTED ('Method not found!'). The two have the same messages on the wire."""
    channel = grpc.insecure_channel(hub.address)
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    answers = list(
        info(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="duhub.v1.IngestService"
                    ),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="grpc.reflection.v1.ServerReflection"
                    ),
                ]
            ),
            timeout=10,
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"duhub.v1.IngestService", "duhub.v1.QueryService", "grpc.health.v1.Health"} <= names
    assert answers[1].file_descriptor_response.file_descriptor_proto, answers[1]
    # Listed and described too (before 2026-12-05 only v1alpha was listed, and a client that
    # lists the services, then describes each, as grpcurl's `list` and `describe` do, could
    # not see v1).
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= (
        names
    )
    described = answers[2].file_descriptor_response.file_descriptor_proto
    assert described, answers[2]
    file = descriptor_pb2.FileDescriptorProto.FromString(described[0])
    assert file.package == "grpc.reflection.v1"
    assert [m.name for m in file.service[0].method] == ["ServerReflectionInfo"]
