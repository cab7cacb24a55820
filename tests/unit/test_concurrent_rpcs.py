"""A server takes a bounded number of calls at once: one per thread and a few waiting for one.
Before, grpc queued every call past its threads without end, so a caller opening thousands of
calls (with a token or without) kept them all, and the city's queries waited behind them past
their deadlines. Past the bound a call is refused RESOURCE_EXHAUSTED at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from duhub.bootstrap import create_server
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from services.slots import StreamSlots, concurrent_rpcs

STREAMS = 1
CALL_THREADS = 2
QUEUED = 3
# The query service's streams, reflection's and the calls' threads.
THREADS = CALL_THREADS + 2 * STREAMS


class HeldQueries:
    """A query service whose every call holds its thread until released."""

    def __init__(self) -> None:
        self.streams = StreamSlots("WatchCoverage", STREAMS)
        self.release = threading.Event()
        self.running = threading.Semaphore(0)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def hold(request: Any, context: grpc.ServicerContext) -> qpb.Progress:
            self.running.release()
            self.release.wait(30)
            return qpb.Progress()

        return hold


@pytest.fixture
def served() -> Iterator[tuple[HeldQueries, grpc.Channel, grpc.Server]]:
    queries = HeldQueries()
    server, port, _ = create_server(
        "127.0.0.1:0",
        query=queries,  # type: ignore[arg-type]
        max_streams=STREAMS,
        call_threads=CALL_THREADS,
        queued_calls=QUEUED,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield queries, channel, server
    finally:
        queries.release.set()
        channel.close()
        server.stop(0).wait()


def _counted_down_to(server: grpc.Server, calls: int) -> None:
    """Wait until grpc counts `calls` calls against its bound (it exposes no count: its
    server's state is read, as no call can observe the count without changing it)."""
    state = server._state  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while state.active_rpc_count != calls:
        assert time.monotonic() < deadline, f"{state.active_rpc_count} calls counted"
        time.sleep(0.01)


def test_calls_past_the_bound_are_refused_at_once_and_calls_within_it_answered(
    served: tuple[HeldQueries, grpc.Channel, grpc.Server],
) -> None:
    queries, channel, server = served
    stub = query_pb2_grpc.QueryServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    bound = concurrent_rpcs(THREADS, QUEUED)

    # Health watchers (open to anyone) are answered from callbacks: more of them than the
    # bound, held open, take none of it. (Opened one by one: a burst of calls at once counts
    # until each has run.)
    watchers = []
    for _ in range(bound + 2):
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watchers.append(watch)

    held = [
        stub.GetProgress.future(qpb.GetProgressRequest(), timeout=30) for _ in range(THREADS - 1)
    ]
    for _ in held:
        assert queries.running.acquire(timeout=10)
    # Within the bound, with a thread free: answered.
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    assert not any(w.done() for w in watchers)
    # grpc counts a call until its thread is done with it, a moment after its answer: wait
    # for that (a sleep of 0.5 s was a guess, and a loaded host may take longer), or the
    # bound is met one call early and the last held call refused.
    _counted_down_to(server, THREADS - 1)

    # Every thread busy and the calls let wait waiting: the bound reached.
    while len(held) < bound:
        held.append(stub.GetProgress.future(qpb.GetProgressRequest(), timeout=30))
    assert queries.running.acquire(timeout=10)  # the last thread taken
    # The next calls, of any method, are refused at once rather than queued.
    for call in (
        lambda: stub.GetProgress(qpb.GetProgressRequest(), timeout=5),
        lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5),
    ):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Concurrent RPC limit exceeded" in e.value.details()
    assert not any(f.done() for f in held)

    # Those let wait are answered once threads free, and calls are taken again.
    queries.release.set()
    for f in held:
        assert f.result(timeout=10) == qpb.Progress()
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
