"""With the services apart, WatchCoverage on the query server hears of changes from the
aggregate workers through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from google.protobuf import json_format

from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2_grpc
from tests.e2e.hubproc import serve
from tests.e2e.test_grpc_surface import covered, watch
from tests.e2e.test_publish_and_query import finishing_visits, scenario
from tests.infra import fresh_database, kafka_log_url
from tests.integration.scale import ends_of, publish, wait_applied


def test_watch_coverage_is_pushed_across_processes(tmp_path: Path) -> None:
    log_url = kafka_log_url(partitions=3)
    with fresh_database() as db_url:
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        procs = [serve("aggregate", *opts), serve("ingest", *opts), serve("query", *opts)]
        ingest, query = procs[1], procs[2]
        try:
            events = [json_format.Parse(x, pb.Event()) for x in scenario()]
            wait_applied(query.address, ends_of(publish(ingest.address, events)))
            stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(query.address))
            replies, call = watch(stub, "vax")
            try:
                assert covered(replies.get(timeout=10), "c2") == 0
                visit = json_format.Parse(finishing_visits()[0], pb.Event())
                sent = time.monotonic()
                publish(ingest.address, [visit])
                pushed = replies.get(timeout=10)
                assert covered(pushed, "c2") == 1
                assert time.monotonic() - sent < 5
            finally:
                call.cancel()
        finally:
            for p in procs:
                p.stop()
