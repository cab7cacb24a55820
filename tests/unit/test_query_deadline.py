"""`duhub query` to a hub that takes the call but answers too late (a table lock held, its
database slow) says so, apart from a hub that is not there."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from duhub.cli import query as query_cli
from duhub.cli.main import main
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc


class SlowQuery(query_pb2_grpc.QueryServiceServicer):
    def __init__(self) -> None:
        self.release = threading.Event()

    def GetStatistics(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.release.wait(10)  # as while waiting on a lock in its database
        return qpb.GetStatisticsResponse()


@pytest.fixture
def slow_hub() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = SlowQuery()
    query_pb2_grpc.add_QueryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        servicer.release.set()
        server.stop(grace=0)


def _stats(address: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(["query", "stats", "--metric", "visits", "--json", "--target", address])
    return int(done.value.code or 0), capsys.readouterr().err


def test_a_hub_that_answers_too_late_is_not_said_to_be_absent(
    slow_hub: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "no hub answers at HOST:PORT (Deadline Exceeded); start one with 'duhub up'",
    # of a hub that was up and busy.
    monkeypatch.setattr(query_cli, "ASK_TIMEOUT_S", 0.5)
    code, err = _stats(slow_hub, capsys)
    assert code == 3, err
    assert f"the hub at {slow_hub} did not answer within 0.5 s (Deadline Exceeded)" in err
    assert "busy, or waiting on its database" in err
    assert "no hub answers" not in err and "duhub up" not in err


def test_no_hub_at_the_address_is_still_said_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(query_cli, "ASK_TIMEOUT_S", 0.5)
    code, err = _stats(address, capsys)
    assert code == 3, err
    assert f"no hub answers at {address}" in err and "did not answer within" not in err
