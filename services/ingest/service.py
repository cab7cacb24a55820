"""gRPC IngestService: a thin layer over the Ingestor."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
from kafka.errors import KafkaError

from duhub.auth.principal import Forbidden, Principal, check_publish
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from services.auth.guard import OPEN, Security, grpc_principal
from services.ingest.ingestor import BatchTooLarge, Ingestor, NotReady, Unreadable, summarize
from services.ingest.request import IncomingBatch

log = logging.getLogger(__name__)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, ingestor: Ingestor, security: Security = OPEN) -> None:
        self.ingestor = ingestor
        self.security = security

    def _publish(
        self,
        request: IncomingBatch | ipb.PublishRequest,
        context: grpc.ServicerContext,
        principal: Principal,
    ) -> ipb.PublishResponse:
        # Registered by bootstrap with services.ingest.request: requests come as IncomingBatch.
        if isinstance(request, IncomingBatch) and request.error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        events = request.events
        try:
            # A node publishes only as itself: one impersonating event refuses the whole
            # request, before anything of it is appended. (Units outside the node's subtree
            # are the rules' business: a per-event rejection.)
            # (An unreadable event has no source to check: it is rejected by itself.)
            check_publish(
                principal, [None if isinstance(e, Unreadable) else e.source for e in events]
            )
        except Forbidden as e:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        try:
            return summarize(self.ingestor.publish(events))
        except BatchTooLarge as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotReady as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        except (OSError, KafkaError) as e:  # the log did not take it: nothing is acknowledged
            log.exception("append failed")
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the log is not writable: {e}")
        raise AssertionError("unreachable")

    def Publish(
        self, request: IncomingBatch | ipb.PublishRequest, context: grpc.ServicerContext
    ) -> ipb.PublishResponse:
        return self._publish(request, context, grpc_principal(self.security, context))

    def PublishStream(
        self,
        request_iterator: Iterator[IncomingBatch | ipb.PublishRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[ipb.PublishResponse]:
        principal = grpc_principal(self.security, context)
        for request in request_iterator:
            yield self._publish(request, context, principal)
