"""Which service answered a call it does not serve (UNIMPLEMENTED), and what to do.

With the services apart, ingest (`duhub serve ingest`) serves no queries and the query service
(`duhub serve query`) takes no events: a command pointed at the other one gets gRPC's own
"Method not found!". The target's reflection lists what it serves, so the message can say.
"""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from duhub.v1 import ingest_pb2, query_pb2

INGEST = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name
QUERY = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name
ASK_TIMEOUT_S = 5.0


def services(channel: grpc.Channel) -> set[str] | None:
    """Return the services the target lists by reflection; None when it does not say."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    try:
        for reply in stub.ServerReflectionInfo(iter([request]), timeout=ASK_TIMEOUT_S):
            return {s.name for s in reply.list_services_response.service}
    except grpc.RpcError:
        return None
    return None


# What an ingest alone and a query service alone are told (publish's wait says the first too).
NO_QUERIES = "{address} answers no queries, as an ingest alone: ask the query service"
NO_EVENTS = "{address} takes no events, as a query service alone: publish to the ingest service"
WHERE = " (--target / DUHUB_TARGET)"


def unimplemented(address: str, served: set[str] | None, detail: str) -> str:
    """Say which service `address` is, by what it serves, and where to go instead."""
    served = served or set()
    if INGEST in served and QUERY not in served:
        return NO_QUERIES.format(address=address) + WHERE
    if QUERY in served and INGEST not in served:
        return NO_EVENTS.format(address=address) + WHERE
    if INGEST in served:  # both: a hub that does not know this call
        return f"{address} does not know this call (UNIMPLEMENTED: {detail}): an older duhub?"
    return (
        f"{address} serves neither duhub's ingest nor its queries (UNIMPLEMENTED: {detail}): "
        "is --target / DUHUB_TARGET a duhub service's address?"
    )
