"""Holds each caller of a gRPC server to its share of the calls in flight (services.shares).

grpcio runs a server interceptor's intercept_service on the server's own polling thread, for
every call, before it refuses the calls past maximum_concurrent_rpcs; the handler it returns
runs on a thread of the pool. So a caller is held to its share at two places:
- at the door (intercept_service): a call whose bearer token belongs to a caller with its share
  in flight is refused at once by a handler on a thread of its own (grpc's
  experimental_thread_pool of a handler; were it dropped, the refusal would wait for a thread
  of the pool), reading no request. It takes no thread of the pool, nor waits for one when the
  pool is full: a caller flooding calls is turned away without delaying anyone else's.
- on the thread (the handler, wrapped): the caller is known for sure there (its token, or its
  certificate, which the door does not see), and the call is counted, or refused when its
  caller has its share in flight (a burst of calls sent before the first have a thread, or a
  hub with client certificates). It is counted until its thread is done with it, however it
  ends: answered, failed, cancelled, past its deadline, its client gone.

A call with one request is taken as a stream of requests and its request read inside the
count: grpc reads the request before the handler runs, so a call whose request never came (a
client sending headers only, with no deadline) held a thread uncounted for as long as it liked.
Calls grpc answers without a thread (health Watch, from callbacks) are not counted. Health
checks are counted as a caller of their own, whoever sends them: probes (a kubelet's, a load
balancer's) send no token, and in the share of every caller without one a few calls held open
(requestless, no deadline) had every probe refused and the pods restarted; not counted at all,
checks held open took every place of the server, every county's calls refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc

from duhub.auth.principal import Unauthenticated
from duhub.built_handlers import BuiltHandlers
from duhub.metrics import CALLS_REFUSED
from services.auth.guard import Security
from services.shares import CallShares, ShareRefused, share_refusal
from services.slots import ANONYMOUS, caller_of

# Threads for the refusals at the door. A refusal waits for nothing (it reads no request), so
# one thread answers them as fast as the door hands them over.
REFUSAL_THREADS = 1
# duhub_calls_refused_total's reason for a call past its caller's share.
CALLER_SHARE = "caller_share"
# The health service's methods, and the caller their calls count as (a share of their own).
HEALTH = "/grpc.health.v1.Health/"
HEALTH_CHECKS = "health checks"

Behavior = Callable[[Any, grpc.ServicerContext], Any]


class CallerShares(grpc.ServerInterceptor):
    """Refuse a caller's calls RESOURCE_EXHAUSTED past its share of calls in flight."""

    def __init__(self, shares: CallShares, security: Security) -> None:
        self.shares = shares
        self.security = security
        self._refusals = futures.ThreadPoolExecutor(REFUSAL_THREADS, "duhub-refusals")
        self._built = BuiltHandlers()  # a method's counted handler, built once, not per call

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or _threadless(handler):
            return handler
        method = handler_call_details.method  # type: ignore[attr-defined]
        if method.startswith(HEALTH):
            return self._built.get(
                method, handler, lambda: self._counted(handler, method, HEALTH_CHECKS)
            )
        token = self.security.bearer(handler_call_details.invocation_metadata)  # type: ignore[attr-defined]
        caller = self.shares.full(token)
        if caller:
            return self._refusal(handler, share_refusal(caller, self.shares.share))
        return self._built.get(method, handler, lambda: self._counted(handler, method))

    def _refusal(self, handler: grpc.RpcMethodHandler, why: str) -> grpc.RpcMethodHandler:
        """Return a handler answering RESOURCE_EXHAUSTED `why` on a refusal thread. It takes
        requests as a stream, so grpc calls it at once, without waiting for a request."""

        def refuse(_requests: Iterator[Any], context: grpc.ServicerContext) -> None:
            CALLS_REFUSED.labels(CALLER_SHARE).inc()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why)

        refuse.experimental_thread_pool = self._refusals  # type: ignore[attr-defined]
        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        return grpc.stream_unary_rpc_method_handler(refuse)

    def _counted(
        self, handler: grpc.RpcMethodHandler, method: str, as_caller: str = ""
    ) -> grpc.RpcMethodHandler:
        """Return `handler` counting each call against its caller's share while it runs (or
        against `as_caller`'s, whoever sends it)."""
        inner = _behavior(handler)
        one = not handler.request_streaming

        def argument(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return _one_request(requests, context, method) if one else requests

        if handler.response_streaming:

            def stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
                caller = self._take(context, as_caller)
                try:  # a generator: closed by grpc, or collected, when its call ends early
                    yield from inner(argument(requests, context), context)
                finally:
                    self.shares.give_back(caller)

            return grpc.stream_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )

        def unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            caller = self._take(context, as_caller)
            try:
                return inner(argument(requests, context), context)
            finally:
                self.shares.give_back(caller)

        return grpc.stream_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer
        )

    def _take(self, context: grpc.ServicerContext, as_caller: str = "") -> str:
        """Count the call against its caller's share (`as_caller`'s when given) and return
        the caller; abort it RESOURCE_EXHAUSTED when the caller has its share in flight."""
        if as_caller:
            return self._count(context, as_caller, "")
        try:
            caller = caller_of(self.security.principal(context))
        except Unauthenticated:
            caller = caller_of(None)  # refused by the service, counted meanwhile
        # A token is remembered only for a caller it names: made-up ones name nobody.
        token = self.security.bearer(context.invocation_metadata())
        return self._count(context, caller, token if caller != ANONYMOUS else "")

    def _count(self, context: grpc.ServicerContext, caller: str, token: str) -> str:
        try:
            self.shares.take(caller, token)
        except ShareRefused as refused:
            CALLS_REFUSED.labels(CALLER_SHARE).inc()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(refused))
        return caller


def _threadless(handler: grpc.RpcMethodHandler) -> bool:
    """Whether grpc runs this handler without a thread of the pool (from callbacks, or on a
    pool of its own): it takes none of the server's places."""
    behavior = _behavior(handler)
    return bool(getattr(behavior, "experimental_non_blocking", False)) or (
        getattr(behavior, "experimental_thread_pool", None) is not None
    )


def _behavior(handler: grpc.RpcMethodHandler) -> Behavior:
    found = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    assert found is not None, "a method handler without a behavior"
    return found


def _one_request(requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> Any:
    """Return the one request of a call taken as a stream; a call ended without one is
    refused as grpc refuses it, in its words. (One whose request could not be read has been
    answered INTERNAL by grpc already, which the refusal leaves as it is.)"""
    try:
        return next(requests)
    except StopIteration:
        why = f'"{method}" requires exactly one request message.'
        context.abort(grpc.StatusCode.UNIMPLEMENTED, why)
        raise
