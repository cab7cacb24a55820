"""One caller holds at most its share of the calls a server takes at once. The bound was for
the whole server only: one caller flooding calls (a buggy county system, a stolen token) held
every place, and every other county was refused "Concurrent RPC limit exceeded" while it
lasted. Real gRPC servers throughout: the hub's own (create_server) and, to end calls in every
way grpc has, a plain one with the interceptor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from duhub.auth import pki
from duhub.auth.principal import Principal, node
from duhub.auth.tokens import append_token
from duhub.bootstrap import create_server
from duhub.node.outbox import retryable
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from services.admission import CallerShares
from services.auth.guard import Security
from services.shares import CallShares
from services.slots import StreamSlots, concurrent_rpcs

YIDU, ZHIJIANG = "420581", "420583"
CALL_THREADS, QUEUED, STREAMS = 4, 4, 1
# The query service's streams, reflection's and the calls' threads.
THREADS = CALL_THREADS + 2 * STREAMS
BOUND = concurrent_rpcs(THREADS, QUEUED)
# A stream of each kind (its share of 1) and a quarter of the 8 places for calls.
SHARE = 2 + (CALL_THREADS + QUEUED) // 4
HOLD = (("x-hold", "1"),)


class HeldQueries:
    """A query service whose calls sent with HOLD hold their thread until released or ended
    by their client; the others are answered at once."""

    def __init__(self) -> None:
        self.streams = StreamSlots("WatchCoverage", STREAMS)
        self.release = threading.Event()
        self.running = threading.Semaphore(0)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def answer(request: Any, context: grpc.ServicerContext) -> qpb.Progress:
            if ("x-hold", "1") in (context.invocation_metadata() or ()):
                self.running.release()
                while context.is_active() and not self.release.wait(0.02):
                    pass
            return qpb.Progress()

        return answer


class Served:
    def __init__(self, security: Security, target: str = "127.0.0.1:{port}") -> None:
        self.queries = HeldQueries()
        self.server, port, _ = create_server(
            "127.0.0.1:0",
            query=self.queries,  # type: ignore[arg-type]
            security=security,
            max_streams=STREAMS,
            call_threads=CALL_THREADS,
            queued_calls=QUEUED,
        )
        self.server.start()
        self.target = target.format(port=port)

    def stop(self) -> None:
        self.queries.release.set()
        self.server.stop(0).wait()


def _tokens(tmp_path: Path, *principals: Principal) -> tuple[Security, list[str]]:
    path = tmp_path / "tokens"
    tokens = [append_token(path, p) for p in principals]
    return Security.load(tokens=str(path)), tokens


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _refused_count() -> float:
    found = REGISTRY.get_sample_value("duhub_calls_refused_total", {"why": "caller_share"})
    return found or 0.0


def _refusals(calls: list[grpc.Future], expected: int) -> None:
    """Wait a while for `expected` of the calls to be answered (refused, as they hold)."""
    _until(lambda: sum(c.done() for c in calls) >= expected)


def _the_one_past_the_share(calls: list[grpc.Future]) -> grpc.Future:
    """Return the one of `calls` (a caller's share and one more, sent at once) that ended.
    Any of them may be the one past the share: the pool's threads count them in whatever
    order they take them (a test waiting on the last one sent hung when another was)."""
    assert _until(lambda: any(c.done() for c in calls)), "none of the calls was refused"
    time.sleep(0.2)  # time for a second to end, were one wrongly refused too
    ended = [c for c in calls if c.done()]
    assert len(ended) == 1, f"{len(ended)} of the calls ended, not one"
    return ended[0]


def _refused_for_its_share(error: BaseException | None, caller: str, share: int) -> bool:
    return (
        isinstance(error, grpc.RpcError)
        and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        and f"too many calls in flight from {caller} (at most {share} at once" in error.details()  # type: ignore[attr-defined]
    )


def test_a_caller_flooding_calls_holds_its_share_and_another_is_still_served(
    tmp_path: Path,
) -> None:
    security, (flood, other) = _tokens(tmp_path, node(YIDU), node(ZHIJIANG))
    served = Served(security)
    channel = grpc.insecure_channel(served.target)
    try:
        stub = query_pb2_grpc.QueryServiceStub(channel)
        refused_before = _refused_count()
        # As many calls as the whole server takes: before, they took every place.
        calls = [
            stub.GetProgress.future(
                qpb.GetProgressRequest(), timeout=30, metadata=_bearer(flood) + HOLD
            )
            for _ in range(BOUND)
        ]
        for _ in range(SHARE):
            assert served.queries.running.acquire(timeout=10)
        _refusals(calls, BOUND - SHARE)
        done = [c for c in calls if c.done()]
        assert len(done) == BOUND - SHARE
        assert all(_refused_for_its_share(c.exception(), f"duhub:node:{YIDU}", SHARE) for c in done)
        # A refusal a node outbox, `duhub publish` and the simulator retry: busy for now.
        assert all(retryable(c.exception()) for c in done)  # type: ignore[arg-type]
        # Counted for the metrics, which saw none of them before (refused at the door, they
        # reach no other interceptor).
        assert _refused_count() - refused_before == BOUND - SHARE

        # Another county is answered meanwhile, and its calls that hold take the threads
        # left, their next ones waiting for a thread (not refused).
        progress = qpb.GetProgressRequest()
        assert stub.GetProgress(progress, timeout=5, metadata=_bearer(other)) == qpb.Progress()
        others = [
            stub.GetProgress.future(progress, timeout=30, metadata=_bearer(other) + HOLD)
            for _ in range(SHARE)
        ]
        for _ in range(THREADS - SHARE):
            assert served.queries.running.acquire(timeout=10)
        time.sleep(0.2)
        assert not any(c.done() for c in others)

        # The flood's calls within its share are answered once released, and its calls are
        # taken again.
        served.queries.release.set()
        for c in [*(c for c in calls if c not in done), *others]:
            assert c.result(timeout=10) == qpb.Progress()
        assert stub.GetProgress(progress, timeout=5, metadata=_bearer(flood)) == qpb.Progress()
    finally:
        channel.close()
        served.stop()


def test_a_caller_at_its_share_is_refused_at_once_though_every_thread_is_busy(
    tmp_path: Path,
) -> None:
    security, (flood, other) = _tokens(tmp_path, node(YIDU), node(ZHIJIANG))
    served = Served(security)
    channel = grpc.insecure_channel(served.target)
    try:
        stub = query_pb2_grpc.QueryServiceStub(channel)
        progress = qpb.GetProgressRequest()
        held = [
            stub.GetProgress.future(progress, timeout=30, metadata=_bearer(flood) + HOLD)
            for _ in range(SHARE)
        ] + [
            stub.GetProgress.future(progress, timeout=30, metadata=_bearer(other) + HOLD)
            for _ in range(THREADS - SHARE)
        ]
        for _ in held:
            assert served.queries.running.acquire(timeout=10)
        # Every thread is busy and places are left for calls to wait in. The flood's next
        # call is refused at once, not made to wait for a thread (before, it waited in line
        # with everyone else's calls, here past its deadline).
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            stub.GetProgress(progress, timeout=5, metadata=_bearer(flood))
        assert _refused_for_its_share(e.value, f"duhub:node:{YIDU}", SHARE)
        assert time.monotonic() - t0 < 4  # held, it would wait out its 5 s deadline
        assert not any(c.done() for c in held)
    finally:
        channel.close()
        served.stop()


def test_calls_without_a_token_held_open_do_not_starve_health_probes(tmp_path: Path) -> None:
    # Probes send no token, and every caller without one shares one share: its share of
    # calls held open (no request, no deadline) had every health probe refused
    # RESOURCE_EXHAUSTED, and a kubelet restarting the pods for it.
    security, _ = _tokens(tmp_path, node(YIDU))
    served = Served(security)
    flood, probe = grpc.insecure_channel(served.target), grpc.insecure_channel(served.target)
    never = threading.Event()
    try:
        raw = flood.stream_unary("/duhub.v1.QueryService/GetProgress")
        calls = [raw.future(iter(never.wait, True)) for _ in range(SHARE + 1)]
        # The share is held: a call more without a token is refused for it.
        refused = _the_one_past_the_share(calls)
        assert _refused_for_its_share(refused.exception(), "callers without credentials", SHARE), (
            refused.exception()
        )
        held = [c for c in calls if c is not refused]
        check = health_pb2_grpc.HealthStub(probe).Check
        answer = check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert not any(c.done() for c in held)
    finally:
        never.set()
        flood.close()
        probe.close()
        served.stop()


def test_health_checks_held_open_take_their_own_share_only(tmp_path: Path) -> None:
    # Counted as nobody's (health checks were exempt from the shares for a while), checks
    # held open without a request took every place: every county refused "Concurrent RPC
    # limit exceeded". Counted as a caller of their own, they hold its share and no more.
    security, (county,) = _tokens(tmp_path, node(YIDU))
    served = Served(security)
    flood, channel = grpc.insecure_channel(served.target), grpc.insecure_channel(served.target)
    never = threading.Event()
    try:
        raw = flood.stream_unary("/grpc.health.v1.Health/Check")
        calls = [raw.future(iter(never.wait, True)) for _ in range(SHARE + 1)]
        refused = _the_one_past_the_share(calls)
        assert _refused_for_its_share(refused.exception(), "health checks", SHARE), (
            refused.exception()
        )
        held = [c for c in calls if c is not refused]
        stub = query_pb2_grpc.QueryServiceStub(channel)
        progress = qpb.GetProgressRequest()
        assert stub.GetProgress(progress, timeout=5, metadata=_bearer(county)) == qpb.Progress()
        assert not any(c.done() for c in held)
    finally:
        never.set()
        flood.close()
        channel.close()
        served.stop()


def test_callers_with_client_certificates_are_told_apart(tmp_path: Path) -> None:
    ca = pki.make_ca()
    server = pki.make_server(ca, ["localhost"])
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "ca.crt").write_bytes(ca.cert_pem)
    (tls / "server.crt").write_bytes(server.cert_pem)
    (tls / "server.key").write_bytes(server.key_pem)
    served = Served(Security.load(tls_dir=str(tls)), target="localhost:{port}")

    def channel_of(unit: str) -> grpc.Channel:
        client = pki.make_client(ca, node(unit))
        creds = grpc.ssl_channel_credentials(ca.cert_pem, client.key_pem, client.cert_pem)
        return grpc.secure_channel(served.target, creds)

    flood, other = channel_of(YIDU), channel_of(ZHIJIANG)
    try:
        stub = query_pb2_grpc.QueryServiceStub(flood)
        calls = [
            stub.GetProgress.future(qpb.GetProgressRequest(), timeout=30, metadata=HOLD)
            for _ in range(BOUND)
        ]
        for _ in range(SHARE):
            assert served.queries.running.acquire(timeout=10)
        _refusals(calls, BOUND - SHARE)
        refused = [c for c in calls if c.done()]
        assert len(refused) == BOUND - SHARE
        assert all(
            _refused_for_its_share(c.exception(), f"duhub:node:{YIDU}", SHARE) for c in refused
        )
        answer = query_pb2_grpc.QueryServiceStub(other).GetProgress(
            qpb.GetProgressRequest(), timeout=5
        )
        assert answer == qpb.Progress()
    finally:
        flood.close()
        other.close()
        served.stop()


# ---- counts given back however a call ends ------------------------------------------------

PLAIN = "/t.Test/"


class Behaviors:
    """Handlers of every shape; a call's `x-do` says what to do: hold (until released or
    ended by its client), fail, raise, or answer."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def _do(self, context: grpc.ServicerContext) -> None:
        what = dict(context.invocation_metadata() or ()).get("x-do", "")
        if what == "hold":
            while context.is_active() and not self.release.wait(0.02):
                pass
        elif what == "fail":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "told to fail")
        elif what == "raise":
            raise RuntimeError("told to raise")

    def unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._do(context)
        return request

    def watch(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self._do(context)
        while context.is_active():
            yield request
            time.sleep(0.02)

    def upload(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        self._do(context)
        return b"".join(requests)

    def echo(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        self._do(context)
        yield from requests

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            PLAIN.strip("/"),
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "Watch": grpc.unary_stream_rpc_method_handler(self.watch),
                "Upload": grpc.stream_unary_rpc_method_handler(self.upload),
                "Echo": grpc.stream_stream_rpc_method_handler(self.echo),
            },
        )


@dataclass
class Plain:
    shares: CallShares
    address: str
    channel: grpc.Channel
    token: str
    behaviors: Behaviors


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Plain]:
    security, tokens = _tokens(tmp_path, node(YIDU), node(ZHIJIANG))
    shares = CallShares(3)
    behaviors = Behaviors()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[CallerShares(shares, security)],
    )
    server.add_generic_rpc_handlers((behaviors.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(address)
    try:
        yield Plain(shares, address, channel, tokens[0], behaviors)
    finally:
        behaviors.release.set()
        channel.close()
        server.stop(0).wait()


def _until(check: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_counts_are_given_back_however_calls_end(plain: Plain) -> None:
    shares, channel, token, behaviors = plain.shares, plain.channel, plain.token, plain.behaviors
    caller = f"duhub:node:{YIDU}"
    unary = channel.unary_unary(PLAIN + "Unary")
    watch = channel.unary_stream(PLAIN + "Watch")
    upload = channel.stream_unary(PLAIN + "Upload")
    echo = channel.stream_stream(PLAIN + "Echo")

    def md(what: str = "") -> tuple[tuple[str, str], ...]:
        return _bearer(token) + ((("x-do", what),) if what else ())

    def counted() -> None:
        assert _until(lambda: shares.held(caller) == 1), "the call was never counted"

    def given_back(how: str) -> None:
        assert _until(lambda: shares.in_flight() == 0), f"a call ended by {how} kept its count"

    # Answered, failed, raised.
    assert unary(b"a", timeout=5, metadata=md()) == b"a"
    assert upload(iter([b"a", b"b"]), timeout=5, metadata=md()) == b"ab"
    assert list(echo(iter([b"a", b"b"]), timeout=5, metadata=md())) == [b"a", b"b"]
    for what, code in (("fail", grpc.StatusCode.INVALID_ARGUMENT), ("raise", None)):
        for call in (
            lambda what=what: unary(b"a", timeout=5, metadata=md(what)),
            lambda what=what: list(watch(b"a", timeout=5, metadata=md(what))),
        ):
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert code is None or e.value.code() == code
    given_back("an answer or an error")

    # Cancelled by its client, past its deadline.
    held = unary.future(b"a", timeout=30, metadata=md("hold"))
    counted()
    held.cancel()
    given_back("a cancel")
    with pytest.raises(grpc.RpcError) as e:
        unary(b"a", timeout=0.5, metadata=md("hold"))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    given_back("its deadline")

    # Streams: cancelled while open; their client gone (its channel closed).
    stream = watch(b"w", timeout=30, metadata=md())
    assert next(stream) == b"w"
    counted()
    stream.cancel()  # type: ignore[attr-defined]
    given_back("a stream cancelled")
    gone = grpc.insecure_channel(plain.address)
    silent = threading.Event()  # its requests never come
    open_stream = gone.stream_stream(PLAIN + "Echo")(iter(silent.wait, True), metadata=md())
    counted()
    gone.close()
    given_back("a stream's client gone")
    silent.set()
    with pytest.raises(grpc.RpcError):
        next(open_stream)

    # A call whose one request never comes is counted while it waits, and given back when
    # its client gives up.
    waiting = threading.Event()
    requestless = channel.stream_unary(PLAIN + "Unary").future(
        iter(waiting.wait, True), timeout=30, metadata=md()
    )
    counted()
    requestless.cancel()
    waiting.set()
    given_back("a call without its request")

    # With every count given back, the caller holds its whole share again, and no more.
    behaviors.release.clear()
    calls = [unary.future(b"a", timeout=30, metadata=md("hold")) for _ in range(shares.share)]
    assert _until(lambda: shares.held(caller) == shares.share)
    with pytest.raises(grpc.RpcError) as e:
        unary(b"a", timeout=5, metadata=md())
    assert _refused_for_its_share(e.value, caller, shares.share)
    behaviors.release.set()
    assert [c.result(timeout=10) for c in calls] == [b"a"] * shares.share
    given_back("an answer after its refused neighbour")
