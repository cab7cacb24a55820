"""A command pointed at the wrong service of the services-apart layout: a query at `duhub serve
ingest`, a publish at `duhub serve query`. Both are real services in process (embedded log,
SQLite), the `duhub` command its own process. Before 2026-12-06 each printed gRPC's own
"UNIMPLEMENTED: Method not found!" and exited 3, "no hub answered", though one had; publish
printed nothing else, not even that its events waited in the outbox."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from duhub.bootstrap import HubConfig, IngestProcess, QueryProcess
from duhub.node import Outbox
from tests.e2e.hubproc import HubProcess, duhub

EVENT = {
    "eventId": "wrong-1",
    "source": "420502",
    "seq": "1",
    "occurredAt": "2022-11-05T00:00:00Z",
    "sanctionImposed": {"unitId": "420502", "area": "ecology", "persons": 1},
}


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("ingest") / "data"
    proc = IngestProcess(HubConfig(data, listen="127.0.0.1:0"))
    proc.start()
    yield f"127.0.0.1:{proc.port}"
    proc.stop()


@pytest.fixture(scope="module")
def query(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("query") / "data"
    proc = QueryProcess(HubConfig(data, listen="127.0.0.1:0"))
    proc.start()
    yield f"127.0.0.1:{proc.port}"
    proc.stop()


@pytest.mark.parametrize(
    "command",
    [("query", "stats", "--metric", "visits"), ("campaigns",), ("units",)],
    ids=["query stats", "campaigns", "units"],
)
def test_a_question_to_an_ingest_alone_says_to_ask_the_query_service(
    ingest: str, command: tuple[str, ...]
) -> None:
    done = duhub(ingest, *command, "--target", ingest)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"duhub: {ingest} answers no queries, as an ingest alone: ask the query service "
        "(--target / DUHUB_TARGET)\n"
    )
    assert "UNIMPLEMENTED" not in done.stderr + done.stdout


def write_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(EVENT) + "\nnot json\n")
    return path


def test_a_publish_to_a_query_service_alone_says_to_publish_to_ingest_and_what_waits(
    query: str, tmp_path: Path
) -> None:
    path, box = write_file(tmp_path), tmp_path / "outbox.db"
    done = duhub(query, "publish", str(path), "--target", query, "--outbox", str(box))
    assert done.returncode == 2, done.stderr
    # The summary of the other give-ups, the line publish itself refused included.
    assert done.stdout.startswith(
        f"{path}: not sent, {query} takes no events: 0 accepted, 0 duplicate, 1 rejected\n"
    ), done.stdout
    assert "  line 2: not a duhub.v1.Event in canonical JSON" in done.stdout
    assert done.stderr == (
        f"duhub: 1 events wait in the outbox {box}; 'duhub outbox retry --outbox {box} "
        "--target INGEST' sends them to the ingest service\n"
        f"duhub: {query} takes no events, as a query service alone: publish to the ingest "
        "service (--target / DUHUB_TARGET)\n"
    )
    with Outbox(box) as held:
        assert held.counts()["pending"] == 1


def test_a_publish_to_a_query_service_alone_says_pending_in_json(
    query: str, tmp_path: Path
) -> None:
    path, box = write_file(tmp_path), tmp_path / "outbox.db"
    done = duhub(query, "publish", str(path), "--target", query, "--outbox", str(box), "--json")
    assert done.returncode == 2, done.stderr
    out = json.loads(done.stdout)
    assert (out["accepted"], out["duplicate"], out["rejected"], out["pending"]) == (0, 0, 1, 1)
    assert out["outbox"] == str(box)
    assert "takes no events, as a query service alone" in done.stderr


def test_an_outbox_retry_to_a_query_service_alone_says_to_send_to_ingest(
    query: str, ingest: str, tmp_path: Path
) -> None:
    """The events left waiting by a publish to the wrong service go where the message says."""
    path, box = write_file(tmp_path), tmp_path / "outbox.db"
    duhub(query, "publish", str(path), "--target", query, "--outbox", str(box))
    done = duhub(query, "outbox", "retry", "--outbox", str(box), "--target", query)
    assert done.returncode == 2, done.stderr
    assert "takes no events, as a query service alone" in done.stderr
    sent = duhub(ingest, "outbox", "retry", "--outbox", str(box), "--target", ingest)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent 1 events: 1 accepted, 0 duplicate, 0 rejected\n")


def test_a_server_that_is_no_duhub_service_is_said_to_be_none(tmp_path: Path) -> None:
    """A gRPC server serving neither (here health alone, no reflection): the message says so,
    not which duhub service it would be."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        done = duhub(f"127.0.0.1:{port}", "campaigns")
    finally:
        server.stop(0)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"duhub: 127.0.0.1:{port} serves neither duhub's ingest nor its queries "
        "(UNIMPLEMENTED: Method not found!): is --target / DUHUB_TARGET a duhub service's "
        "address?\n"
    )


def test_a_command_at_an_http_server_says_it_is_no_grpc_address(tmp_path: Path) -> None:
    """The dashboard's address, printed in `duhub up`'s banner beside the hub's, given as
    --target: "no hub answers at …" (exit 3), though a hub ran. Another HTTP/1 server alike."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub = HubProcess(tmp_path / "data")
    dashboard = hub.dashboard.removeprefix("http://").rstrip("/")
    try:
        for address in (dashboard, f"127.0.0.1:{server.server_address[1]}"):
            done = duhub(address, "units", "--target", address)
            assert done.returncode == 2, done.stderr
            assert done.stderr.startswith(
                f"duhub: {address} answers, but not in gRPC: perhaps the dashboard's address"
            ), done.stderr
    finally:
        server.shutdown()
        hub.stop()
