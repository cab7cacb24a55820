"""Read a PublishRequest from its bytes without letting one bad event sink the batch.

gRPC's generated handlers parse the whole request first: a single event with invalid UTF-8 or
truncated bytes fails the call with an opaque "Exception deserializing request". Here the
IngestService is registered with a deserializer that never raises (`read_request`): the
request parses in one go when it can (the usual case, as fast as before); when it cannot, the
envelope (`repeated Event events = 1`) is split by hand and each event parsed on its own, so
an unreadable event becomes `Unreadable` (REJECTED naming the field where its bytes go wrong)
and the others are checked as usual. Only an unreadable envelope fails the call
(INVALID_ARGUMENT naming `events`). Clients keep using the generated stubs unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError

from duhub.convert import InvalidEvent, decode_event
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.wire import find_fault, first_string, split_repeated
from services.ingest.ingestor import MAX_BATCH, Unreadable

SERVICE = ipb.DESCRIPTOR.services_by_name["IngestService"].full_name
EVENTS = ipb.PublishRequest.DESCRIPTOR.fields_by_name["events"].number


@dataclass(frozen=True, slots=True)
class IncomingBatch:
    """A request as read: its events, or why the request as a whole is unreadable."""

    events: Sequence[pb.Event | Unreadable] = ()
    error: str = ""  # "events: ..." when the envelope cannot be read


@dataclass(frozen=True, slots=True)
class UnreadBatch:
    """A request whose bytes did not parse in one go, to be read event by event (`read`)
    once its caller is known: gRPC runs the deserializer before the handler authenticates,
    and naming where bytes go wrong walks them in Python (up to 0.6 s an event), which anyone
    reaching the port could make the hub do, many times over (security probe)."""

    data: bytes

    def read(self) -> IncomingBatch:
        return _read_slowly(self.data)


def read_request(data: bytes) -> IncomingBatch | UnreadBatch:
    """Return the events of a serialized PublishRequest, or the bytes to read later when
    they do not parse in one go. Never raises."""
    try:
        request = ipb.PublishRequest.FromString(data)
        if len(unknown_fields.UnknownFieldSet(request)):
            return UnreadBatch(data)
        return IncomingBatch(request.events)
    except DecodeError:
        return UnreadBatch(data)
    except Exception as e:  # noqa: BLE001 - a deserializer that raises answers INTERNAL
        return _not_read(e)


# What the ingest handlers get: read_request's answer (a generated stub's own handler, in
# tests, passes a PublishRequest).
Request = IncomingBatch | UnreadBatch | ipb.PublishRequest


def read_batch(request: Request) -> IncomingBatch | ipb.PublishRequest:
    """Return a request read, reading an UnreadBatch now: call it once the caller is known."""
    return request.read() if isinstance(request, UnreadBatch) else request


def _read_slowly(data: bytes) -> IncomingBatch:
    try:
        return _read(data)
    except Exception as e:  # noqa: BLE001 - one unforeseen fault refuses this request only
        return _not_read(e)


def _not_read(e: Exception) -> IncomingBatch:
    return IncomingBatch(error=f"events: the request could not be read ({e})")


def _read(data: bytes) -> IncomingBatch:
    try:
        ipb.PublishRequest.FromString(data)
    except DecodeError:
        return _read_each(data)
    # It parses: what stopped it is a field this hub does not know.
    fault = find_fault(ipb.PublishRequest.DESCRIPTOR, data, root="events", unknown=True)
    return _unreadable(fault.reason if fault else "unknown fields")


def _read_each(data: bytes) -> IncomingBatch:
    raw, fault = split_repeated(ipb.PublishRequest.DESCRIPTOR, data, EVENTS, root="events")
    if fault is not None:
        return _unreadable(fault.reason)
    if len(raw) > MAX_BATCH:
        return IncomingBatch(error=f"events: more than {MAX_BATCH} events in one batch")
    events: list[pb.Event | Unreadable] = []
    for value in raw:
        try:
            events.append(decode_event(value))
        except InvalidEvent as e:
            events.append(Unreadable(first_string(value, 1), e.field, e.reason))
    return IncomingBatch(events)


def _unreadable(why: str) -> IncomingBatch:
    return IncomingBatch(error=f"events: the request is not a duhub.v1.PublishRequest ({why})")


def add_ingest_service(servicer: object, server: grpc.Server) -> None:
    """Register the IngestService methods of `servicer`, reading requests with read_request.

    Publish gets an IncomingBatch and PublishStream an iterator of them; responses are
    PublishResponse as in the .proto.
    """
    serialize = ipb.PublishResponse.SerializeToString
    handlers = {
        "Publish": grpc.unary_unary_rpc_method_handler(
            servicer.Publish,  # type: ignore[attr-defined]
            request_deserializer=read_request,
            response_serializer=serialize,
        ),
        "PublishStream": grpc.stream_stream_rpc_method_handler(
            servicer.PublishStream,  # type: ignore[attr-defined]
            request_deserializer=read_request,
            response_serializer=serialize,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
