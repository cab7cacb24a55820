"""Server reflection (grpcurl, Postman) with a cap on its streams, as every long-lived stream.

Each ServerReflectionInfo call is a stream that holds a thread of the server's pool until its
client ends it: uncapped, 40 of them took every thread of a server with --max-streams 2 and a
query waited past its deadline. (Health Watch streams need no cap: grpc's health servicer
answers them from callbacks, not a thread each.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2_grpc as pb_grpc

from services.slots import MAX_STREAMS, StreamSlots


class CappedReflection(reflection.ReflectionServicer):
    """The standard reflection servicer, refusing streams past `max_streams` open at once."""

    def __init__(self, service_names: Sequence[str], max_streams: int = MAX_STREAMS) -> None:
        super().__init__(service_names)
        self.streams = StreamSlots("ServerReflectionInfo", max_streams)

    def ServerReflectionInfo(  # noqa: N802 (the RPC's name)
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        with self.streams.held(context):
            yield from super().ServerReflectionInfo(request_iterator, context)


def enable_reflection(
    service_names: Sequence[str], server: grpc.Server, max_streams: int = MAX_STREAMS
) -> CappedReflection:
    """Serve reflection of `service_names` on `server`; return the servicer (its cap)."""
    servicer = CappedReflection(service_names, max_streams)
    pb_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    return servicer
