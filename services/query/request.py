"""Read QueryService requests so that bytes which are no request are refused by name.

gRPC's generated handlers parse a request before the method runs, and a parse that fails
answers INTERNAL "Exception deserializing request!", naming nothing: a string that is not
UTF-8, bytes cut short, a client built from another .proto. Here each method reads its request
with a deserializer that never raises (`read_request`): what does not parse becomes an
`UnreadableRequest`, answered INVALID_ARGUMENT naming the field where its bytes go wrong
(`duhub.wire.find_fault`). Clients keep using the generated stubs unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from duhub.v1 import query_pb2 as qpb
from duhub.wire import find_fault
from services.query.refusal import abort

SERVICE = qpb.DESCRIPTOR.services_by_name["QueryService"]
# A question holds a few fields (its metrics a dozen at most); bytes that do not parse are
# walked to name where only this far: this runs before the caller is authenticated.
MAX_FIELDS = 1_000


@dataclass(frozen=True, slots=True)
class UnreadableRequest:
    """A request whose bytes do not parse: why, naming the field."""

    why: str


def read_request(cls: type[Message]) -> Callable[[bytes], Message | UnreadableRequest]:
    """Return a deserializer of `cls` that never raises (a raise answers INTERNAL)."""

    def read(data: bytes) -> Message | UnreadableRequest:
        try:
            return cls.FromString(data)
        except Exception as e:  # noqa: BLE001 - DecodeError, or anything else the parser raises
            try:
                fault = find_fault(cls.DESCRIPTOR, data, root="request", max_fields=MAX_FIELDS)
            except Exception:  # noqa: BLE001 - the walker is no reason to answer INTERNAL
                fault = None
            why = str(fault) if fault else f"request: not a {cls.DESCRIPTOR.full_name} ({e})"
            return UnreadableRequest(why)

    return read


def _refusing(method: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    def handle(request: Message | UnreadableRequest, context: grpc.ServicerContext) -> Any:
        if isinstance(request, UnreadableRequest):
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.why)
        return method(request, context)

    return handle


def add_query_service(servicer: object, server: grpc.Server) -> None:
    """Register every QueryService method of `servicer`, reading requests with read_request."""
    handlers = {}
    for m in SERVICE.methods:
        request_cls = getattr(qpb, m.input_type.name)
        reply_cls = getattr(qpb, m.output_type.name)
        make = (
            grpc.unary_stream_rpc_method_handler
            if m.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[m.name] = make(
            _refusing(getattr(servicer, m.name)),
            request_deserializer=read_request(request_cls),
            response_serializer=reply_cls.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
