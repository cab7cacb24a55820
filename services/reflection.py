"""Server reflection (grpcurl, Postman) with a cap on its streams, as every long-lived stream.

Served as grpc.reflection.v1 and v1alpha: grpcio-reflection ships only v1alpha, deprecated,
so a client asking v1 alone (Go's grpcreflect.NewClientV1) got UNIMPLEMENTED. The two have
the same messages on the wire: v1 is the same servicer under v1's name, and v1's descriptor
(v1alpha's under v1's package) is added to the descriptor pool, so that v1 is listed and can
be described like every other service served.

The files of duhub.v1 are served with the comments of proto/ (`duhub/v1/descriptors.binpb`,
written by `make proto` beside the code): the descriptors compiled into the code have none,
and a county's developer describing a message with grpcurl read its fields without a word.

Each ServerReflectionInfo call is a stream that holds a thread of the server's pool until its
client ends it: uncapped, 40 of them took every thread of a server with --max-streams 2 and a
query waited past its deadline. (Health Watch streams need no cap: grpc's health servicer
answers them from callbacks, not a thread each.) Reflection asks no credentials, but a caller
that sends ones the hub knows is held to its own share of the places; the others share one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as pb_grpc

from duhub.auth.principal import Principal, Unauthenticated
from services.auth.guard import OPEN, Security
from services.slots import MAX_STREAMS, StreamSlots, caller_of

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"
DESCRIPTORS = "descriptors.binpb"


def _add_v1_descriptor() -> None:
    """Add grpc.reflection.v1's file to the default pool (once): v1alpha's file under v1's
    package and name, as upstream's reflection.proto for v1 is."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(V1_FILE)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    file.name, file.package = V1_FILE, "grpc.reflection.v1"
    pool.AddSerializedFile(file.SerializeToString())


@cache
def _commented() -> dict[str, bytes]:
    """Return duhub.v1's files as protoc describes them with their comments, by name."""
    raw = resources.files("duhub.v1").joinpath(DESCRIPTORS).read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(raw).file
    return {f.name: f.SerializeToString() for f in files}


def _with_comments(answer: Any) -> Any:
    """Put the commented form of duhub's files in a reflection answer (the same schema:
    `make proto` writes both from proto/, and `make proto-check` holds them to it)."""
    if answer.HasField("file_descriptor_response"):
        files = answer.file_descriptor_response.file_descriptor_proto
        commented = _commented()
        for i, raw in enumerate(files):
            name = descriptor_pb2.FileDescriptorProto.FromString(raw).name
            if name in commented:
                files[i] = commented[name]
    return answer


class CappedReflection(reflection.ReflectionServicer):
    """The standard reflection servicer, refusing streams past `max_streams` open at once, or
    past a caller's share of them."""

    def __init__(
        self,
        service_names: Sequence[str],
        max_streams: int = MAX_STREAMS,
        max_streams_per_caller: int | None = None,
        security: Security = OPEN,
    ) -> None:
        super().__init__(service_names)
        self.streams = StreamSlots("ServerReflectionInfo", max_streams, max_streams_per_caller)
        self.security = security

    def _caller(self, context: grpc.ServicerContext) -> Principal | None:
        """Return who calls, or None for a call without credentials the hub knows (served all
        the same)."""
        try:
            return self.security.principal(context)
        except Unauthenticated:
            return None

    def ServerReflectionInfo(  # noqa: N802 (the RPC's name)
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        with self.streams.held(context, caller_of(self._caller(context))):
            for answer in super().ServerReflectionInfo(request_iterator, context):
                yield _with_comments(answer)


def enable_reflection(
    service_names: Sequence[str],
    server: grpc.Server,
    max_streams: int = MAX_STREAMS,
    max_streams_per_caller: int | None = None,
    security: Security = OPEN,
) -> CappedReflection:
    """Serve reflection of `service_names` and of itself (v1alpha and v1) on `server`; return
    the servicer (its cap)."""
    _add_v1_descriptor()
    names = [*service_names, reflection.SERVICE_NAME, V1_SERVICE_NAME]
    servicer = CappedReflection(
        list(dict.fromkeys(names)), max_streams, max_streams_per_caller, security
    )
    pb_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": v1}),)
    )
    return servicer
