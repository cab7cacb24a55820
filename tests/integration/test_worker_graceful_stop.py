"""An aggregate worker stopped with SIGTERM or SIGINT while events flow, on real Kafka and
PostgreSQL: it stops applying before it leaves the group, commits what it has in flight,
says which partitions it gave up and exits 0; the worker left takes them over and every
event counts once."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import pytest

from duhub.v1 import ingest_pb2 as ipb
from tests.e2e.hubproc import DuhubProcess, serve
from tests.infra import fresh_database, kafka_log_url
from tests.integration.scale import accountability, ends_of, persons_by_unit, publish, wait_applied

COUNTIES = ["420502", "420503", "420504", "420505"]
STOPPED = re.compile(r"aggregate worker stops \((SIGTERM|SIGINT)\): gave up partitions (\[.*?\])")
LEFT = re.compile(r"LeaveGroup request succeeded")
# What ingest and the query service say as they stop (before, nothing: a log did not tell a
# service stopped from one killed or lost).
SERVICE_STOPPED = re.compile(
    r"INFO \S+ (ingest|query) service stops \((\w+)\): ran for \d+:\d\d:\d\d$"
)


def applied_after(worker: DuhubProcess, line: re.Pattern[str]) -> list[str]:
    """The batches the worker folded (records moved) after the first line matching `line`."""
    out = [x.rstrip("\n") for x in worker.output]
    at = next(i for i, x in enumerate(out) if line.search(x))
    return [x for x in out[at:] if re.search(r"folded [1-9]\d* of", x)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_stopped_under_load_exits_cleanly_and_says_what_it_gave_up(
    tmp_path: Path, signum: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiokafka's INFO line says when the worker has left the group (LEFT): the libraries log
    # at WARNING unless told (duhub.logs).
    monkeypatch.setenv("DUHUB_LIBRARY_LOG_LEVEL", "INFO")
    log_url = kafka_log_url(partitions=4)
    with fresh_database() as db_url:
        opts = ("--log", log_url, "--db", db_url)
        leaving = serve("aggregate", *opts, "--data-dir", str(tmp_path / "a"))
        ingest = serve("ingest", *opts, "--data-dir", str(tmp_path / "i"))
        staying = serve("aggregate", *opts, "--data-dir", str(tmp_path / "b"))
        query = serve("query", *opts, "--data-dir", str(tmp_path / "q"))
        procs = [leaving, ingest, staying, query]
        try:
            expected = {c: 0 for c in COUNTIES}
            results: list[ipb.EventResult] = []
            done = threading.Event()

            def county_node(county: str) -> None:
                seq = 0
                while not done.is_set():
                    batch = [accountability(county, seq + i, i % 4 + 1) for i in range(1, 41)]
                    seq += len(batch)
                    got = publish(ingest.address, batch)
                    results.extend(got)
                    expected[county] += sum(
                        e.accountability_imposed.persons
                        for e, r in zip(batch, got, strict=True)
                        if r.result == ipb.RESULT_ACCEPTED
                    )

            nodes = [threading.Thread(target=county_node, args=(c,)) for c in COUNTIES]
            for t in nodes:
                t.start()
            try:
                # Both workers hold partitions and apply: the load is steady.
                leaving.find(re.compile(r"reading partitions \[\d.*gained"), timeout=60)
                staying.find(re.compile(r"reading partitions \[\d.*gained"), timeout=60)
                time.sleep(3)
                leaving.proc.send_signal(signum)
                code = leaving.proc.wait(timeout=60)
            finally:
                time.sleep(2)
                done.set()
                for t in nodes:
                    t.join(timeout=120)
            output = "".join(leaving.output)
            # Before: exit 70 and "CRITICAL ... aggregate worker stops: a batch failed"
            # (RuntimeError: cannot schedule new futures after interpreter shutdown) when the
            # feed, never told to stop, handed a batch to its writer as Python exited; and it
            # went on applying partitions after it had left the group.
            assert code == 0, output[-3000:]
            assert "CRITICAL" not in output, output[-3000:]
            stopped = leaving.find(STOPPED, timeout=1)
            assert stopped.group(1) == signum.name
            assert stopped.group(2) != "[]"
            assert applied_after(leaving, LEFT) == []

            wait_applied(query.address, ends_of(results), timeout=120)
            got = persons_by_unit(query.address)
            assert {c: got.get(c) for c in COUNTIES} == expected

            # Ingest and the query service stopped so say it, as the worker did.
            for service, name in ((ingest, "ingest"), (query, "query")):
                service.proc.send_signal(signum)
                assert service.proc.wait(timeout=60) == 0, "".join(service.output)[-3000:]
                said = service.find(SERVICE_STOPPED, timeout=5)
                assert said.groups() == (name, signum.name), said.group(0)
        finally:
            for p in procs:
                p.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_stopped_right_after_its_banner_exits_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # Before, the banner came before anything caught the signals (Faust's loop installs its
    # handlers only once the worker starts, seconds later): a TERM right after it ended the
    # worker by the default action (exit -15; an INT, a KeyboardInterrupt traceback).
    with fresh_database() as db_url:
        worker = serve(
            "aggregate", "--log", kafka_log_url(2), "--db", db_url, "--data-dir", str(tmp_path)
        )
        worker.proc.send_signal(signum)
        code = worker.proc.wait(timeout=90)
        time.sleep(0.5)  # the rest of its output
        output = "".join(worker.output)
        assert code == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        # Every thread ended with it: none was left behind by a hard exit (stuck_threads).
        assert "did not end" not in output, output[-3000:]
