"""One gRPC link to the hub's IngestService, as a county node holds it: wait for the server,
retry a batch on UNAVAILABLE with backoff (the hub de-duplicates by event id), and give up
only when told to stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import grpc

from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc

log = logging.getLogger(__name__)

# Worth another try: the hub is down, busy or restarting. Anything else is a bug to report.
RETRY = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
}
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0
DEADLINE = 30.0
POLL = 0.05
POLLER_LINGER = 0.3


class Stopped(Exception):
    """The simulator was told to stop while waiting on the hub."""


class Link:
    def __init__(self, target: str, stop: threading.Event) -> None:
        self.target = target
        self.stop = stop
        self.channel: grpc.Channel | None = None
        self.stub: ingest_pb2_grpc.IngestServiceStub | None = None
        self.retries = 0
        self._ready_at = 0.0

    def connect(self) -> None:
        """Open the channel and wait until the server answers; once per channel (after
        that, gRPC reconnects by itself and `publish` retries)."""
        if self.channel is not None:
            return
        channel = grpc.insecure_channel(self.target)
        ready = grpc.channel_ready_future(channel)
        try:
            while True:
                try:
                    ready.result(timeout=0.5)
                    break
                except grpc.FutureTimeoutError:
                    if self.stop.is_set():
                        raise Stopped() from None
        except BaseException:
            ready.cancel()
            self._ready_at = time.monotonic()
            self._close(channel)
            raise
        self._ready_at = time.monotonic()
        self.channel, self.stub = channel, ingest_pb2_grpc.IngestServiceStub(channel)

    def close(self) -> None:
        if self.channel is not None:
            channel, self.channel, self.stub = self.channel, None, None
            self._close(channel)

    def _close(self, channel: grpc.Channel) -> None:
        # grpcio's connectivity poller, started by channel_ready_future, lingers up to 0.2 s
        # after the future is done and raises "Channel closed!" if the channel closes under it.
        time.sleep(max(0.0, self._ready_at + POLLER_LINGER - time.monotonic()))
        channel.close()

    def publish(self, batches: Sequence[Sequence[pb.Event]]) -> list[ipb.PublishResponse | None]:
        """Publish each batch (one per request, concurrently); return one response per batch.

        A batch that fails for a reason worth retrying is sent again, as is, until it gets an
        answer; None marks one the hub refused for good (logged).
        """
        self.connect()
        assert self.stub is not None
        out: list[ipb.PublishResponse | None] = [None] * len(batches)
        todo = [i for i, b in enumerate(batches) if b]
        backoff = BACKOFF_FIRST
        while todo:
            calls = {
                i: self.stub.Publish.future(ipb.PublishRequest(events=batches[i]), timeout=DEADLINE)
                for i in todo
            }
            retry = []
            for i, call in calls.items():
                self._wait(call, calls.values())
                try:
                    out[i] = call.result()
                except grpc.RpcError as e:
                    code = e.code()  # type: ignore[attr-defined]
                    if code in RETRY:
                        retry.append(i)
                    else:
                        log.error(
                            "hub refused a batch of %d events from %s: %s %s",
                            len(batches[i]),
                            batches[i][0].source,
                            code,
                            e.details(),
                        )  # type: ignore[attr-defined]
            todo = retry
            if todo:
                self.retries += 1
                log.warning(
                    "hub at %s unavailable; retrying %d batches in %.1fs",
                    self.target,
                    len(todo),
                    backoff,
                )
                if self.stop.wait(backoff):
                    raise Stopped()
                backoff = min(backoff * 2, BACKOFF_MAX)
        return out

    def _wait(self, call: grpc.Future, every) -> None:  # type: ignore[no-untyped-def]
        while True:
            try:
                call.exception(timeout=POLL)  # returns as soon as the call is done
                return
            except grpc.FutureTimeoutError:
                if self.stop.is_set():
                    for c in every:
                        c.cancel()
                    raise Stopped() from None
