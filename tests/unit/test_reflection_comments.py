"""Reflection describes duhub's services with the comments of proto/: a county's developer
with grpcurl or a Go client built from reflection reads what each field means. Before, the
descriptors served were those compiled into duhub/v1 (protoc leaves the comments out of
them): `grpcurl describe duhub.v1.EventResult` showed the fields without a word."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from grpc_reflection.v1alpha import reflection_pb2_grpc as rpb_grpc

from duhub.v1 import ingest_pb2
from services.reflection import enable_reflection


@pytest.fixture
def channel() -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    enable_reflection(["duhub.v1.IngestService"], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch
    finally:
        server.stop(None)


def described(channel: grpc.Channel, symbol: str) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Return the files reflection answers for `symbol`, by name."""
    stub = rpb_grpc.ServerReflectionStub(channel)
    (answer,) = stub.ServerReflectionInfo(
        iter([rpb.ServerReflectionRequest(file_containing_symbol=symbol)]), timeout=10
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in answer.file_descriptor_response.file_descriptor_proto
    ]
    return {f.name: f for f in files}


def comments(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    return [loc.leading_comments.strip() for loc in file.source_code_info.location]


def test_a_service_is_described_with_its_comments(channel: grpc.Channel) -> None:
    files = described(channel, "duhub.v1.IngestService")
    ingest = files["duhub/v1/ingest.proto"]
    assert "Not appended; reason names the field." in comments(ingest)
    # The dependencies come with theirs too.
    assert any("supervision" in c.lower() for c in comments(files["duhub/v1/events.proto"]))


def test_the_schema_served_is_the_one_compiled_in(channel: grpc.Channel) -> None:
    # What differs from what the code was generated from: the comments, and each field's
    # JSON name written out (protoc's descriptor sets carry it; it is the default one).
    served = described(channel, "duhub.v1.IngestService")["duhub/v1/ingest.proto"]
    served.ClearField("source_code_info")
    for message in served.message_type:
        for f in message.field:
            assert f.json_name == f.name.split("_")[0] + "".join(
                w.title() for w in f.name.split("_")[1:]
            )
            f.ClearField("json_name")
    compiled = descriptor_pb2.FileDescriptorProto()
    ingest_pb2.DESCRIPTOR.CopyToProto(compiled)
    assert served == compiled
