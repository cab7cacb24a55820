"""The server's interceptors build a method's handler once, not for every call: grpcio asks
them on its one polling thread, every call waiting behind it."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from duhub.health import UnavailableInterceptor
from duhub.metrics import MetricsInterceptor
from services.admission import CallerShares
from services.auth.guard import OPEN
from services.shares import CallShares

METHOD = "/duhub.v1.QueryService/GetCoverage"


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def answer(request: Any, context: Any) -> str:
    return "answer"


INTERCEPTORS = {
    "caller shares": lambda: CallerShares(CallShares(4), OPEN),
    "metrics": MetricsInterceptor,
    "unavailable": UnavailableInterceptor,
}


@pytest.fixture(params=sorted(INTERCEPTORS))
def interceptor(request: pytest.FixtureRequest) -> grpc.ServerInterceptor:
    return INTERCEPTORS[request.param]()


def test_each_call_of_a_method_gets_the_handler_built_for_its_first(
    interceptor: grpc.ServerInterceptor,
) -> None:
    inner = grpc.unary_unary_rpc_method_handler(answer)
    first = interceptor.intercept_service(lambda _: inner, Details(METHOD))
    assert first is not inner  # wrapped
    assert interceptor.intercept_service(lambda _: inner, Details(METHOD)) is first
    other = interceptor.intercept_service(lambda _: inner, Details(METHOD + "x"))
    assert other is not first  # another method, its own


def test_a_method_whose_handler_changed_gets_one_built_from_the_new(
    interceptor: grpc.ServerInterceptor,
) -> None:
    inner = grpc.unary_unary_rpc_method_handler(answer)
    first = interceptor.intercept_service(lambda _: inner, Details(METHOD))
    again = grpc.unary_unary_rpc_method_handler(answer)
    built = interceptor.intercept_service(lambda _: again, Details(METHOD))
    assert built is not first
    assert interceptor.intercept_service(lambda _: again, Details(METHOD)) is built
