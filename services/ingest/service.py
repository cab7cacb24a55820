"""gRPC IngestService: a thin layer over the Ingestor."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
from kafka.errors import KafkaError

from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from services.ingest.ingestor import BatchTooLarge, Ingestor, NotReady, summarize

log = logging.getLogger(__name__)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    def _publish(
        self, request: ipb.PublishRequest, context: grpc.ServicerContext
    ) -> ipb.PublishResponse:
        try:
            return summarize(self.ingestor.publish(request.events))
        except BatchTooLarge as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotReady as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        except (OSError, KafkaError) as e:  # the log did not take it: nothing is acknowledged
            log.exception("append failed")
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the log is not writable: {e}")
        raise AssertionError("unreachable")

    def Publish(
        self, request: ipb.PublishRequest, context: grpc.ServicerContext
    ) -> ipb.PublishResponse:
        return self._publish(request, context)

    def PublishStream(
        self, request_iterator: Iterator[ipb.PublishRequest], context: grpc.ServicerContext
    ) -> Iterator[ipb.PublishResponse]:
        for request in request_iterator:
            yield self._publish(request, context)
