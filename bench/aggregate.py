"""Aggregation: the Faust worker (`duhub serve aggregate --log kafka://… --db postgresql://…`)
vs a raw kafka-python consumer that only reads and parses the same records.

A fresh topic (12 partitions, as ingest creates it) is filled with the records ingest appends
(reference data first, `recorded_at` and `prev_hash` set, header duhub-origin=ingest) plus the
~2% resends (as racing ingest instances or Kafka-direct retries leave them; counted once).
One worker applies it into a fresh PostgreSQL read model; the rate is the records applied after
the first committed position over the time from it to the last (the first commit's records
were worked on before it; the worker's start-up, group join included, is in `details`). Then
the raw consumer reads the same topic from the start and parses every value; its rate likewise
leaves out its first poll's records (fetched and decoded before its clock starts) and their time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from bench import common as c
from bench.events import stored_records
from bench.ingest import ensure_topic
from duhub.log.origin import ingest_headers
from duhub.readmodel import schema as s
from duhub.v1 import events_pb2 as pb


def fill_topic(topic: str, records: Iterable[tuple[bytes, bytes]]) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=c.KAFKA,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=512 * 1024,
        client_id="duhub-bench-fill",
    )
    origin_key = c.origin_key()
    t0 = time.perf_counter()
    try:
        for key, value in records:
            # Signed as ingest signs its records: the worker refuses them otherwise.
            producer.send(topic, key=key, value=value, headers=ingest_headers(origin_key, value))
        producer.flush()
    finally:
        producer.close(timeout=10)
    return time.perf_counter() - t0


@dataclass
class Drained:
    """What a raw read of a topic did: the records read after its first poll, over the time
    from the end of that first poll's work (its records fetched, decoded and parsed) to the
    last; the first poll's records are left out with the time they took, as the worker's
    figure leaves out its first commit's."""

    counted: int  # records read after the first poll (in `rate`)
    first_poll: int  # records of the first poll (not in `rate`)
    steady_s: float  # from the first poll's records parsed to the last record parsed
    overall_s: float  # from the start, the consumer's set-up included

    @property
    def rate(self) -> float:
        return self.counted / self.steady_s if self.steady_s > 0 else float("nan")


def drain(
    poll: Callable[[], Iterable[Sequence[Any]]],
    parse: Callable[[Any], object],
    total: int,
    clock: Callable[[], float] = time.perf_counter,
    timeout: float = 600,
) -> Drained:
    """Poll until `total` records were read, parsing each value; time it (see Drained)."""
    t0 = clock()
    deadline = time.monotonic() + timeout
    seen = 0
    first: float | None = None
    first_poll = 0
    while seen < total and time.monotonic() < deadline:
        got = 0
        for records in poll():
            for m in records:
                parse(m.value)
            got += len(records)
        seen += got
        if got and first is None:
            # The clock starts here: this poll's records were fetched and decoded before
            # now, so they are not counted either.
            first, first_poll = clock(), got
    end = clock()
    if seen < total:
        raise TimeoutError(f"raw consumer read {seen} of {total}")
    assert first is not None
    return Drained(seen - first_poll, first_poll, end - first, end - t0)


def raw_consume(topic: str, total: int) -> Drained:
    """Read and parse every record (see Drained for what is timed)."""
    from kafka import KafkaConsumer, TopicPartition

    from duhub.log.kafka import ISOLATION_LEVEL

    consumer = KafkaConsumer(
        bootstrap_servers=c.KAFKA,
        group_id=None,
        enable_auto_commit=False,
        client_id="duhub-bench-raw-consumer",
        # As the worker reads (committed records only): the same fetches, like for like.
        isolation_level=ISOLATION_LEVEL,
        max_poll_records=5000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        t0 = time.perf_counter()
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        done = drain(
            lambda: consumer.poll(timeout_ms=500, max_records=5000).values(),
            pb.Event.FromString,
            total,
        )
        done.overall_s = time.perf_counter() - t0
        return done
    finally:
        consumer.close()


# How often the applied positions are read while the worker runs (below 1M records).
POLL_S = 0.05


def applied(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.coalesce(func.sum(s.log_positions.c.next_offset), 0))).scalar()
        )


@dataclass
class WorkerRun:
    """One Faust worker applying a filled topic to the end."""

    rate: float  # records/s applied after the first committed position, until the last
    steady_s: float
    first_commit: int  # records the first commit seen had applied (not in `rate`)
    with_startup_s: float
    peak_mb: float  # VmHWM of the worker (of its last incarnation when it was restarted)
    restarts: int
    exits: list[str]
    # (records applied, RSS MB) sampled along the way: the curve behind the peak.
    samples: list[tuple[int, float]] = field(default_factory=list)
    # Position changes seen after the first: the commits `rate` rests on (one = one batch,
    # timed to the polling interval).
    commits_timed: int = 0


def run_worker_to_end(
    topic: str,
    db: str,
    engine: Any,
    total: int,
    workdir: Path,
    undo: c.Cleanup,
    *,
    sample_every: int = 0,
) -> WorkerRun:
    """Start `duhub serve aggregate` on `topic` into `db` and wait until every one of the
    `total` records is applied, watching its memory (`sample_every` records: a curve point)."""
    t_start = time.perf_counter()
    log = c.kafka_url(topic)

    def start(i: int) -> c.Proc:
        args = ("--log", log, "--db", db, "--data-dir", str(workdir))
        return c.serve("aggregate", *args, log=workdir / f"aggregate-{i}.out")

    # Restarted when it exits, as a supervisor would (it does: see the details).
    worker = c.Supervised(start, c.FAUST_DEAD)
    undo.add(worker.stop)
    # Wait for the schema (the worker creates it), then for every position.
    t_first = None
    first_done = 0
    deadline = time.monotonic() + max(300, total / 200)
    done = 0
    peak = 0.0
    samples: list[tuple[int, float]] = []
    commits_timed = 0
    # Polled often: the rate's interval is measured to a polling interval at both ends.
    every = POLL_S if total < 1_000_000 else 1.0
    while time.monotonic() < deadline and worker.restarts <= 5:
        worker.check()
        before = done
        try:
            done = applied(engine)
        except Exception:  # noqa: BLE001 - tables not created yet
            done = 0
        if t_first is not None and done > before:
            commits_timed += 1
        if done and t_first is None:
            # The records of this first commit were folded and written before now: they
            # are left out of the rate with the time they took.
            t_first, first_done = time.perf_counter(), done
        mem = c.rss_mb(worker.proc.pid)
        peak = max(peak, mem["peak"])
        if sample_every and (not samples or done - samples[-1][0] >= sample_every):
            samples.append((done, round(mem["rss"], 1)))
        if done >= total:
            break
        time.sleep(every)
    t_done = time.perf_counter()
    peak = max(peak, c.rss_mb(worker.proc.pid)["peak"])
    if done < total:
        tail = "".join(worker.proc.lines[-20:])
        raise RuntimeError(f"the worker applied {done} of {total} records:\n{tail}")
    assert t_first is not None
    steady = t_done - t_first
    return WorkerRun(
        (total - first_done) / steady,
        steady,
        first_done,
        t_done - t_start,
        peak,
        worker.restarts,
        worker.exits,
        samples,
        commits_timed,
    )


def run(ctx: Any) -> None:
    n = ctx.size("aggregate")
    c.ensure_services(kafka=True, pg=True)
    it, gen = stored_records(n, seed=13, prefix="agg", duplicates_in_log=True)
    records = list(it)
    total = len(records)
    c.say(
        f"aggregate: {total:,} records ({n:,} events, {gen.info.duplicates:,} resends, reference)"
    )
    rates, raw_rates, runs = [], [], []
    peaks = []
    for rep in range(ctx.repeats):
        with c.cleanup() as undo:
            topic = undo.topic(c.unique("duhub.bench.agg."))
            ensure_topic(topic)
            fill = fill_topic(topic, records)
            db = undo.database(c.create_database())
            engine = create_engine(db.replace("postgresql://", "postgresql+psycopg2://", 1))
            undo.add(engine.dispose)
            workdir = ctx.workdir / f"aggregate-{rep}"
            workdir.mkdir(parents=True, exist_ok=True)
            worker = run_worker_to_end(topic, db, engine, total, workdir, undo)
            rate, steady, peak = worker.rate, worker.steady_s, worker.peak_mb
            with engine.connect() as conn:
                dead = conn.execute(text("SELECT count(*) FROM dead_letters")).scalar()
                seen = conn.execute(text("SELECT count(*) FROM events_seen")).scalar()
            raw = raw_consume(topic, total)
            raw_rate = raw.rate
        rates.append(rate)
        raw_rates.append(raw_rate)
        peaks.append(peak)
        runs.append(
            {
                "fill_topic_s": round(fill, 2),
                "worker_seconds_steady": round(steady, 2),
                "worker_first_commit_records": worker.first_commit,
                "worker_commits_timed": worker.commits_timed,
                "worker_seconds_with_startup": round(worker.with_startup_s, 2),
                "raw_seconds": round(raw.steady_s, 3),
                "raw_first_poll_records": raw.first_poll,
                "raw_seconds_with_startup": round(raw.overall_s, 2),
                "dead_letters": dead,
                "events_seen": seen,
                "worker_peak_rss_mb": round(peak, 1),
                "worker_restarts": worker.restarts,
                "worker_exits": worker.exits,
            }
        )
        c.say(
            f"aggregate run {rep + 1}: worker {rate:,.0f} records/s "
            f"({worker.with_startup_s:.1f} s with start-up), raw consumer {raw_rate:,.0f}/s; "
            f"dead letters {dead}, events seen {seen:,}, peak RSS {peak:.0f} MB, "
            f"worker restarts {worker.restarts}"
        )
    value, ref = c.median(rates), c.median(raw_rates)
    ratio = value / ref
    restarts = sum(r["worker_restarts"] for r in runs)
    note = (
        f"the Faust worker's fetcher crashed {restarts} time(s) in {len(runs)} run(s) (aiokafka "
        "KeyError); the bench restarted it at once, as a liveness check would (left alone it "
        "hangs ~5 min applying nothing); the time includes the restarts"
        if restarts
        else ""
    )
    ctx.results.add(
        c.Figure(
            "aggregation, Faust worker → PostgreSQL",
            value,
            "events/s",
            rates,
            "raw consumer, read + parse",
            ref,
            raw_rates,
            ratio,
            "of raw",
            "≥ 50,000/s per worker and ≥ 0.5× raw",
            value >= 50_000 and ratio >= 0.5,
            f"{total:,} records, 1 worker, 12 partitions",
            note=note,
        )
    )
    peak = c.median(peaks)
    ctx.results.add(
        c.Figure(
            "peak RSS, aggregate worker (Faust)",
            peak,
            "MB",
            peaks,
            target="≤ 500 MB at 10M events",
            met=False if peak > 500 else c.at_target_size(total, True)[0],
            size=f"{total:,} records",
            note=c.at_target_size(total, True)[1],
        )
    )
    ctx.results.details["aggregate"] = {"runs": runs, "records": total, "events": n}
