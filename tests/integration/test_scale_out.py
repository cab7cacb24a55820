"""The services apart on real Kafka and PostgreSQL: two Faust workers share the partitions,
one is killed mid-stream, and every figure is still exact."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from duhub.v1 import ingest_pb2 as ipb
from tests.e2e.hubproc import serve
from tests.infra import fresh_database, kafka_log_url
from tests.integration.scale import (
    COUNTIES,
    accountability,
    ends_of,
    persons_by_unit,
    publish,
    wait_applied,
)

PER_COUNTY = 300


def test_two_workers_one_killed_mid_stream_keep_figures_exact(tmp_path: Path) -> None:
    log_url = kafka_log_url(partitions=6)
    with fresh_database() as db_url:
        opts = ("--log", log_url, "--db", db_url, "--data-dir", str(tmp_path))
        procs = [serve("aggregate", *opts), serve("aggregate", *opts)]
        ingest = serve("ingest", *opts)
        query = serve("query", *opts)
        procs += [ingest, query]
        try:
            expected = {c: 0 for c in COUNTIES}
            results: list[ipb.EventResult] = []
            half = threading.Event()

            def county_node(county: str) -> None:
                for start in range(1, PER_COUNTY + 1, 50):
                    batch = [accountability(county, s, s % 4 + 1) for s in range(start, start + 50)]
                    got = publish(ingest.address, batch)
                    results.extend(got)
                    expected[county] += sum(
                        e.accountability_imposed.persons
                        for e, r in zip(batch, got, strict=True)
                        if r.result == ipb.RESULT_ACCEPTED
                    )
                    if start > PER_COUNTY // 2:
                        half.set()
                    time.sleep(0.01)

            nodes = [threading.Thread(target=county_node, args=(c,)) for c in COUNTIES]
            for t in nodes:
                t.start()
            assert half.wait(120)
            procs[0].kill9()  # one worker dies mid-stream; the other takes its partitions
            for t in nodes:
                t.join(timeout=300)
            assert (
                sum(r.result == ipb.RESULT_ACCEPTED for r in results) == len(COUNTIES) * PER_COUNTY
            )

            wait_applied(query.address, ends_of(results), timeout=180)
            got = persons_by_unit(query.address)
            assert got == expected
        finally:
            for p in procs:
                p.stop()
