"""Freshness: time from the ACCEPTED answer to the figure being visible, at a sustained
5,000 events/s published through ingest (open loop), on Kafka + PostgreSQL with the services
apart: `duhub serve ingest`, one `duhub serve aggregate` (Faust) and `duhub serve query`.

Method: GetProgress is polled every 10 ms; an event at (partition, offset) is visible once
the read model's applied position of its partition is past its offset — the position commits
in the same transaction as the rollups, so GetStatistics answers with it from then on. Its
freshness is the reply time of the first poll that shows it, minus the time its ACCEPTED
answer arrived (so it includes up to one polling interval). Every accepted event is measured.
Events not visible when the drain window closes count with the time until then: a lower
bound, and the figures say so.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any

import grpc

from bench import common as c
from bench.events import request_bytes, wire_stream
from bench.ingest import METHOD, wait_serving
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc

RATE = 5000
BATCH = 250  # one request every 50 ms
POLL_S = 0.010


class Poller:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = query_pb2_grpc.QueryServiceStub(self.channel)
        self.times: list[float] = []
        self.applied: dict[int, list[int]] = {}
        self.ptimes: dict[int, list[float]] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                reply = self.stub.GetProgress(qpb.GetProgressRequest(), timeout=5)
            except grpc.RpcError:
                time.sleep(POLL_S)
                continue
            now = time.perf_counter()
            for pp in reply.partitions:
                a = self.applied.setdefault(pp.partition, [])
                if not a or pp.applied > a[-1]:
                    a.append(pp.applied)
                    self.ptimes.setdefault(pp.partition, []).append(now)
            self._stop.wait(max(0.0, POLL_S - (time.perf_counter() - began)))

    def total(self) -> int:
        return sum(a[-1] for a in self.applied.values() if a)

    def visible_at(self, partition: int, offset: int, after: float) -> float | None:
        """Reply time of the first poll at or after `after` that shows the offset applied."""
        a = self.applied.get(partition, [])
        t = self.ptimes.get(partition, [])
        i = bisect.bisect_left(a, offset + 1)
        if i >= len(a):
            return None
        # The first change at or past the offset may predate `after`: then the next poll
        # after `after` shows it (the position never goes back).
        return t[i] if t[i] >= after else after + 0.5 * POLL_S

    def stop(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.channel.close()


def one_run(ctx: Any, tag: str, requests: list[bytes], rate: int, batch: int, drain: int) -> dict:
    """Publish the requests at `rate` events/s; return the run's figures."""
    with c.cleanup() as undo:
        topic = undo.topic(c.unique("duhub.bench.fresh."))
        db = undo.database(c.create_database())
        wd = ctx.workdir / f"freshness-{tag}"
        wd.mkdir(parents=True, exist_ok=True)
        common = ("--log", c.kafka_url(topic), "--db", db, "--data-dir", str(wd))
        # The worker first: it creates the schema ingest and query read.
        # Restarted when it exits, as a supervisor would (counted in the details).
        worker = c.Supervised(
            lambda i: c.serve("aggregate", *common, log=wd / f"aggregate-{i}.out"),
            c.FAUST_DEAD,
        )
        undo.add(worker.stop)
        watching = threading.Event()

        def supervise() -> None:
            while not watching.wait(0.5):
                worker.check()

        threading.Thread(target=supervise, daemon=True).start()
        undo.add(watching.set)
        ingest = undo.proc(c.serve("ingest", *common, log=wd / "ingest.out"))
        query = undo.proc(c.serve("query", "--db", db, "--data-dir", str(wd), log=wd / "q.out"))
        wait_serving(ingest.address)
        poller = Poller(query.address)
        undo.add(poller.stop)
        # The reference data (loaded by ingest) applied first.
        if not c.wait_until(lambda: poller.total() >= 1160, 120, 0.1):
            raise TimeoutError("the reference data was not applied in 120 s")
        sent_at: list[float] = []
        channel = grpc.insecure_channel(ingest.address)
        undo.add(channel.close)
        call = channel.stream_stream(
            METHOD, request_serializer=None, response_deserializer=ipb.PublishResponse.FromString
        )
        t0 = time.perf_counter() + 0.2

        def schedule():  # type: ignore[no-untyped-def]
            for i, req in enumerate(requests):
                due = t0 + i * batch / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                sent_at.append(due)
                yield req

        accepted: list[tuple[int, int, float]] = []
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        last_answer = t0
        for reply in call(schedule(), timeout=600):
            now = last_answer = time.perf_counter()
            counts["accepted"] += reply.accepted
            counts["duplicate"] += reply.duplicate
            counts["rejected"] += reply.rejected
            for r in reply.results:
                if r.result == ipb.RESULT_ACCEPTED:
                    accepted.append((r.partition, r.offset, now))
        publish_s = last_answer - t0
        ends: dict[int, int] = {}
        for p, o, _ in accepted:
            ends[p] = max(ends.get(p, 0), o + 1)

        def all_visible() -> bool:
            return all((poller.applied.get(p) or [0])[-1] >= e for p, e in ends.items())

        c.wait_until(all_visible, drain, 0.1)
        poller.stop()
        window_end = time.perf_counter()
        lat: list[float] = []
        missing = 0
        for p, o, t_acc in accepted:
            seen = poller.visible_at(p, o, t_acc)
            if seen is None:
                # Not visible when the window closed: that long at least (a lower bound).
                missing += 1
                seen = window_end
            lat.append((seen - t_acc) * 1000)
    answered = sum(counts.values())
    out = {
        "offered_rate": rate,
        "p50_ms": round(c.percentile(lat, 50), 1),
        "p99_ms": round(c.percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "measured_events": len(lat),
        "not_visible_within_drain": missing,
        "drain_s": drain,
        "counts": counts,
        "achieved_publish_rate": round(answered / publish_s) if publish_s > 0 else 0,
        "last_answer_behind_schedule_s": round(last_answer - sent_at[-1], 2) if sent_at else 0,
        "worker_restarts": worker.restarts,
        "worker_exits": worker.exits,
    }
    c.say(
        f"freshness {tag}: p50 {out['p50_ms']:,.0f} ms, p99 {out['p99_ms']:,.0f} ms; ingest "
        f"answered {out['achieved_publish_rate']:,} events/s of {rate:,} offered "
        f"({out['last_answer_behind_schedule_s']} s behind at the end); {missing:,} not "
        f"visible within {drain} s; worker restarts {worker.restarts}"
    )
    return out


def build_requests(rate: int, seconds: int, batch: int, seed: int) -> list[bytes]:
    items, _, _ = wire_stream(int(rate * seconds / 1.02), seed=seed, prefix=f"fr{seed}")
    return [
        request_bytes([v for _, v in items[i : i + batch]]) for i in range(0, len(items), batch)
    ]


def run(ctx: Any) -> None:
    seconds = ctx.size("freshness_seconds")
    drain = 20 if ctx.quick else 60
    c.ensure_services(kafka=True, pg=True)
    requests = build_requests(RATE, seconds, BATCH, 17)
    c.say(f"freshness: {RATE:,}/s offered for ~{seconds} s, drain ≤ {drain} s")
    runs = [one_run(ctx, f"{RATE}-{i}", requests, RATE, BATCH, drain) for i in range(ctx.repeats)]
    p50s = [r["p50_ms"] for r in runs]
    p99s = [r["p99_ms"] for r in runs]
    p99 = c.median(p99s)
    achieved = c.median([r["achieved_publish_rate"] for r in runs])
    sustained = achieved >= 0.95 * RATE
    notes = []
    if not sustained:
        notes.append(f"ingest answered only {achieved:,.0f}/s of the 5,000/s offered")
    if any(r["not_visible_within_drain"] for r in runs):
        notes.append(f"some events not visible after the {drain} s drain: figures are lower bounds")
    restarts = sum(r["worker_restarts"] for r in runs)
    if restarts:
        notes.append(f"the Faust worker crashed {restarts} time(s) and was restarted")
    size = f"{RATE:,}/s offered for {seconds} s"
    low: dict | None = None
    if not ctx.quick:
        # Beside it, a rate these services sustain here: the latency when not overloaded.
        low = one_run(ctx, "500", build_requests(500, 20, 50, 19), 500, 50, drain)
    ctx.results.add(
        c.Figure(
            "freshness p50, ACCEPTED → visible",
            c.median(p50s),
            "ms",
            p50s,
            reference="at 500/s" if low else "",
            reference_value=low["p50_ms"] if low else None,
            size=size,
            note="; ".join(notes),
        )
    )
    ctx.results.add(
        c.Figure(
            "freshness p99, ACCEPTED → visible",
            p99,
            "ms",
            p99s,
            reference="at 500/s" if low else "",
            reference_value=low["p99_ms"] if low else None,
            target="≤ 500 ms at 5,000/s",
            met=p99 <= 500 and sustained,
            size=size,
            note="; ".join(notes),
        )
    )
    ctx.results.details["freshness"] = {
        "method": "GetProgress polled every 10 ms; visible = applied position past the offset",
        "runs": runs,
        "at_500_per_s": low,
    }
