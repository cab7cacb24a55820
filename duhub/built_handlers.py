"""The method handlers a gRPC server interceptor builds, kept per method.

grpcio asks every interceptor for a call's handler on the server's one polling thread, before
the call is handed to a thread: an interceptor wrapping the handler built it anew for every call
(closures, a handler tuple, a metric's labels looked up), ~20 us of the polling thread's time a
call with three interceptors, every call waiting behind it (`duhub serve query`, by profile).
The handler a method's call gets is the same every time, so what wraps it is too: it is kept
and reused while the handler it wraps is the very same object.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc


class BuiltHandlers:
    """Handlers built from another, by method name. Only the methods the server has handlers
    for are kept (an unknown method's call has none to wrap), so they are few."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(
        self,
        method: str,
        inner: grpc.RpcMethodHandler,
        build: Callable[[], grpc.RpcMethodHandler],
    ) -> grpc.RpcMethodHandler:
        """Return what `build` makes of `inner` for `method`, built once while `inner` stays."""
        found = self._built.get(method)
        if found is not None and found[0] is inner:
            return found[1]
        built = build()
        self._built[method] = (inner, built)
        return built
