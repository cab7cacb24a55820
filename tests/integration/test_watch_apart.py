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
from tests.infra import fresh_database, kafka_log_url, postgres_url
from tests.integration.chaos import private_postgres
from tests.integration.scale import ends_of, publish, wait_applied
from tests.unit.builders import (
    DANG_V1,
    YIDU_V1,
    Pipeline,
    campaign,
    group,
    hierarchy,
    kinds,
    visit,
)


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


def test_watch_coverage_rides_out_a_postgres_restart(tmp_path: Path) -> None:
    """The stream stays open while the read model is briefly unreachable and pushes what
    changed once it is back. It ended with UNKNOWN ("Exception iterating responses") when the
    change listener woke it while PostgreSQL restarted: unary questions answer UNAVAILABLE
    meanwhile, and a watcher was left to find out that it had to ask again."""
    postgres_url()
    with private_postgres() as pg:
        p = Pipeline.open(tmp_path / "hub", db_url=pg.url)
        query = serve("query", "--db", pg.url, "--data-dir", str(tmp_path / "query"))
        try:
            p.publish(hierarchy(), allow_reference=True)
            p.publish(
                [
                    campaign(
                        "c", [group("g", pb.TIER_CITY, YIDU_V1, DANG_V1)], event_id="camp", seq=1
                    )
                ]
            )
            p.tailer.catch_up()
            stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(query.address))
            replies, call = watch(stub, "c")
            try:
                assert covered(replies.get(timeout=10), "g") == 0
                pg.down()
                time.sleep(3.0)  # the listener lost its connection and woke the watcher
                pg.up()
                assert kinds(p.publish([visit(YIDU_V1, "c", "g", event_id="v1", seq=2)])) == [
                    "accepted"
                ]
                p.tailer.catch_up()
                assert covered(replies.get(timeout=15), "g") == 1
                assert call.is_active()
            finally:
                call.cancel()
        finally:
            query.stop()
            p.close()
