"""gRPC IngestService: a thin layer over the Ingestor."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import grpc
from kafka.errors import KafkaError

from duhub.auth.principal import Forbidden, Principal, check_publish
from duhub.diskfull import disk_full
from duhub.health import abort_unavailable
from duhub.log.base import LogClosed
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from services.auth.guard import OPEN, Security, grpc_principal
from services.ingest.ingestor import (
    BatchTooLarge,
    Ingestor,
    NotReady,
    Prepared,
    Unreadable,
    summarize,
)
from services.ingest.request import IncomingBatch, Request, read_batch
from services.slots import MAX_STREAMS, StreamSlots, caller_of

log = logging.getLogger(__name__)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(
        self,
        ingestor: Ingestor,
        security: Security = OPEN,
        max_streams: int = MAX_STREAMS,
        max_streams_per_caller: int | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.security = security
        self.streams = StreamSlots("PublishStream", max_streams, max_streams_per_caller)
        # When an append first met a full disk (monotonic), until one is appended again:
        # said once per outage, not with a traceback per refused batch.
        self._full_since: float | None = None

    def _disk_full(self, e: BaseException) -> None:
        if self._full_since is not None:
            return
        self._full_since = time.monotonic()
        log.error(
            "append failed: the log's disk is full (%s); publishers are answered UNAVAILABLE "
            "until it has room",
            _cause(e),
        )

    def _room_again(self) -> None:
        since, self._full_since = self._full_since, None
        if since is not None:
            lasted = time.monotonic() - since
            log.warning("appending again (the log's disk was full for %.0f s)", lasted)

    def _publish(
        self,
        request: Request,
        context: grpc.ServicerContext,
        principal: Principal,
        prepared: Prepared | BaseException | None = None,
    ) -> ipb.PublishResponse:
        # Registered by bootstrap with services.ingest.request: requests come as IncomingBatch,
        # or as bytes read only now, the caller known (UnreadBatch).
        request = read_batch(request)
        if isinstance(request, IncomingBatch) and request.error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
        events = request.events
        try:
            # A node publishes only as itself: one impersonating event refuses the whole
            # request, before anything of it is appended. (Units outside the node's subtree
            # are the rules' business: a per-event rejection.)
            # (An unreadable event has no source to check: it is rejected by itself.)
            check_publish(
                principal, (None if isinstance(e, Unreadable) else e.source for e in events)
            )
        except Forbidden as e:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        try:
            if prepared is None:
                results = self.ingestor.publish(events)
            elif isinstance(prepared, BaseException):
                raise prepared
            else:
                results = self.ingestor.commit(prepared)
            if self._full_since is not None:
                self._room_again()
            return summarize(results)
        except BatchTooLarge as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotReady as e:
            abort_unavailable(context, str(e))
        except LogClosed:  # stopping, past the server's grace: not appended, nothing to trace
            abort_unavailable(context, "the hub is stopping; nothing was appended")
        except (OSError, KafkaError) as e:  # the log did not take it: nothing is acknowledged
            if disk_full(e):
                self._disk_full(e)
                abort_unavailable(context, f"the log's disk is full ({_cause(e)}); retry later")
            log.exception("append failed")
            abort_unavailable(context, f"the log is not writable: {e}")
        raise AssertionError("unreachable")

    def Publish(self, request: Request, context: grpc.ServicerContext) -> ipb.PublishResponse:
        return self._publish(request, context, grpc_principal(self.security, context))

    def PublishStream(
        self,
        request_iterator: Iterator[Request],
        context: grpc.ServicerContext,
    ) -> Iterator[ipb.PublishResponse]:
        # Refused before anything is read; the place is counted against the caller's share.
        caller = caller_of(grpc_principal(self.security, context))
        with self.streams.held(context, caller):
            ahead = _ReadAhead(request_iterator, self.ingestor)
            try:
                for request, prepared in ahead:
                    # Asked again per request: a token revoked (its line deleted) while the
                    # stream is open refuses the stream's next request, as it does a new call.
                    principal = grpc_principal(self.security, context)
                    yield self._publish(request, context, principal, prepared)
            finally:
                ahead.close()


def _cause(e: BaseException) -> str:
    """A full disk's error in a few words ("No space left on device")."""
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


_END = object()


class _ReadAhead:
    """Read and prepare (decode, fetch from the read model) a stream's next request while the
    current one is checked, appended and acknowledged: the read model's round trips overlap
    the log's. One request ahead at most; answers stay in request order, and a client that
    waits for each answer before sending on is served as before."""

    def __init__(self, requests: Iterator[Request], ingestor: Ingestor):
        self._requests = requests
        self._ingestor = ingestor
        self._ready: queue.Queue[tuple[object, object]] = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        threading.Thread(target=self._run, name="ingest-read-ahead", daemon=True).start()

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                request = next(self._requests, _END)
            except BaseException as e:  # the call ended or failed: the handler raises it
                self._put((_END, e))
                return
            if request is _END:
                self._put((_END, None))
                return
            prepared: Prepared | BaseException | None = None
            request = read_batch(request)  # the stream's caller was known before it was read
            if not (isinstance(request, IncomingBatch) and request.error):
                try:
                    prepared = self._ingestor.prepare(request.events)  # type: ignore[union-attr]
                except Exception as e:  # raised in order, where publish raised it
                    prepared = e
            if not self._put((request, prepared)):
                if isinstance(prepared, Prepared):
                    self._ingestor.release(prepared)
                return

    def _put(self, item: tuple[object, object]) -> bool:
        while not self._closed.is_set():
            try:
                self._ready.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[Request, object]]:
        while True:
            request, prepared = self._ready.get()
            if request is _END:
                if prepared is not None:
                    raise prepared  # type: ignore[misc]
                return
            yield request, prepared  # type: ignore[misc]

    def close(self) -> None:
        self._closed.set()
        try:
            _, prepared = self._ready.get_nowait()
        except queue.Empty:
            return
        if isinstance(prepared, Prepared):
            self._ingestor.release(prepared)
