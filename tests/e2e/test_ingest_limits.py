"""The limits of IngestService over real gRPC: what each oversized or unreadable request answers.

An in-process hub (embedded log, SQLite) on a loopback port; the county node's side is the
generated stub, or a raw-bytes method for what no stub would send.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from duhub.bootstrap import MAX_MESSAGE, Hub, HubConfig
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from services.ingest.ingestor import MAX_BATCH
from tests.unit.builders import HOUR, visit

COUNTY = "420581"
TOWNSHIP = "420581101"


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    hub = Hub(HubConfig(tmp_path_factory.mktemp("limits") / "data", listen="127.0.0.1:0"))
    hub.start()
    ch = grpc.insecure_channel(hub.address)
    yield ch
    ch.close()
    hub.stop()


def raw_publish(ch: grpc.Channel):  # type: ignore[no-untyped-def]
    return ch.unary_unary(
        "/duhub.v1.IngestService/Publish",
        request_serializer=lambda b: b,
        response_deserializer=ipb.PublishResponse.FromString,
    )


def envelope(*events: bytes) -> bytes:
    out = b""
    for e in events:
        n, size = len(e), bytearray()
        while n >= 0x80:
            size.append(n & 0x7F | 0x80)
            n >>= 7
        size.append(n)
        out += b"\x0a" + bytes(size) + e
    return out


_seq = iter(range(1, 1_000_000))


def good(event_id: str) -> pb.Event:
    """A visit the hub accepts: a township of Yidu (420581), published by Yidu."""
    return visit(
        TOWNSHIP,
        event_id=event_id,
        source=COUNTY,
        seq=next(_seq),
        occurred_at=time.time_ns() - HOUR,
        area="ecology",
    )


def healthy(ch: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_message_over_32_mib_is_refused_by_grpc_and_the_hub_carries_on(
    channel: grpc.Channel,
) -> None:
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    big = visit(TOWNSHIP, event_id="big", source=COUNTY)
    big.supervision_visit.group_id = "g" * MAX_MESSAGE
    with pytest.raises(grpc.RpcError) as info:
        stub.Publish(ipb.PublishRequest(events=[big]), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details()
    assert str(MAX_MESSAGE) in info.value.details()
    healthy(channel)
    (r,) = stub.Publish(ipb.PublishRequest(events=[good("after-big")]), timeout=30).results
    assert r.result == ipb.RESULT_ACCEPTED


def test_more_than_the_batch_limit_is_refused_naming_events(channel: grpc.Channel) -> None:
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    events = [pb.Event(event_id=f"b{i}") for i in range(MAX_BATCH + 1)]
    with pytest.raises(grpc.RpcError) as info:
        stub.Publish(ipb.PublishRequest(events=events), timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == f"events: more than {MAX_BATCH} events in one batch"


def test_a_full_batch_of_rejections_fits_the_answer(channel: grpc.Channel) -> None:
    """10,000 events with the longest ids and reasons: the answer stays within a client's
    default 4 MiB receive limit (ids too long to be valid are echoed cut to 128)."""
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    events = [visit(TOWNSHIP, event_id=f"{i:05d}" + "x" * 400, seq=0) for i in range(MAX_BATCH)]
    resp = stub.Publish(ipb.PublishRequest(events=events), timeout=120)
    assert resp.rejected == MAX_BATCH and len(resp.results) == MAX_BATCH
    assert {r.field for r in resp.results} == {"event_id"}
    assert resp.results[7].event_id == "00007" + "x" * 123
    assert resp.ByteSize() < 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x0a\x10abc", "truncated: 16 bytes announced at byte 1, only 3 left"),
        (b"\xff\xff", "truncated at byte 2"),
        (b"\x10\x01", "unknown field 2"),
        (b"\x0f", "invalid wire type 7"),
    ],
    ids=["event cut short", "garbage", "unknown field", "bad wire type"],
)
def test_an_unreadable_request_is_refused_naming_events(
    channel: grpc.Channel, data: bytes, words: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        raw_publish(channel)(data, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("events: the request is not a duhub.v1.PublishRequest (")
    assert words in info.value.details()
    healthy(channel)


def test_unreadable_events_are_rejected_one_by_one(channel: grpc.Channel) -> None:
    ok = good("mix-ok").SerializeToString()
    bad_utf8 = good("mix-utf8").SerializeToString().replace(TOWNSHIP.encode(), b"\xff" * 9)
    cut = good("mix-cut").SerializeToString()[:-4]
    unknown = good("mix-unknown").SerializeToString() + b"\xf8\x07\x01"
    bad_level = good("mix-level")
    bad_level.org_unit_registered.level = 77  # replaces the visit: a unit of level 77
    resp = raw_publish(channel)(
        envelope(ok, bad_utf8, cut, unknown, bad_level.SerializeToString(), ok), timeout=30
    )
    got = [(r.event_id, r.result, r.field) for r in resp.results]
    assert got == [
        ("mix-ok", ipb.RESULT_ACCEPTED, ""),
        ("mix-utf8", ipb.RESULT_REJECTED, "supervision_visit.unit_id"),
        ("mix-cut", ipb.RESULT_REJECTED, "supervision_visit"),
        ("mix-unknown", ipb.RESULT_REJECTED, "event"),
        ("mix-level", ipb.RESULT_REJECTED, "org_unit_registered.level"),
        ("mix-ok", ipb.RESULT_DUPLICATE, ""),
    ]
    assert resp.results[1].reason.startswith("supervision_visit.unit_id: invalid UTF-8 at byte")
    assert resp.results[3].reason.startswith("event: unknown field 127")
    assert (resp.accepted, resp.duplicate, resp.rejected) == (1, 1, 4)


def test_publish_stream_reads_each_request_tolerantly(channel: grpc.Channel) -> None:
    stream = channel.stream_stream(
        "/duhub.v1.IngestService/PublishStream",
        request_serializer=lambda b: b,
        response_deserializer=ipb.PublishResponse.FromString,
    )
    first = envelope(good("st-1").SerializeToString())
    second = envelope(b"\x0a\x02\xff\xff", good("st-2").SerializeToString())
    answers = stream(iter([first, second, b"\x0a\x7f"]), timeout=30)
    a = next(answers)
    assert [r.result for r in a.results] == [ipb.RESULT_ACCEPTED]
    b = next(answers)
    assert [(r.result, r.field) for r in b.results] == [
        (ipb.RESULT_REJECTED, "event_id"),
        (ipb.RESULT_ACCEPTED, ""),
    ]
    with pytest.raises(grpc.RpcError) as info:
        next(answers)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("events: ")
    healthy(channel)


def test_the_generated_stub_is_unchanged(channel: grpc.Channel) -> None:
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    e = good("stub-1")
    assert stub.Publish(ipb.PublishRequest(events=[e]), timeout=30).accepted == 1
    (resp,) = stub.PublishStream(iter([ipb.PublishRequest(events=[e])]), timeout=30)
    assert resp.duplicate == 1
