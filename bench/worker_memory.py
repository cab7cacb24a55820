"""Peak memory of one Faust aggregate worker (`duhub serve aggregate`) that applies the large
log: 10,000,000 events in the full run, the size the target names. The quick run applies only
the first QUICK_RECORDS records of its 200k log: the whole of it took ~3 minutes on a 2-core
Xeon, more than the quick run's five minutes leave for one figure.

The large embedded log (bench.replay.build_log: the records ingest appends, reference data
first) is copied into a fresh 12-partition topic, keyed by source as ingest keys them, and one
worker applies all of it into a fresh PostgreSQL read model. VmHWM of the worker is the
figure; its RSS is sampled every ~5% of the records so the results show the curve behind the
peak (flat, or growing with the events applied). The rate over the whole log is reported
beside it, for the aggregation benchmark's smaller backlog to be compared with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import create_engine, text

from bench import common as c
from bench.aggregate import fill_topic, run_worker_to_end
from bench.ingest import ensure_topic
from bench.replay import build_log
from duhub.log.embedded import EmbeddedLog

LIMIT_MB = 500
READ = 20_000
QUICK_RECORDS = 25_000


def log_records(log_dir: Any, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) of the records of an embedded log (the first `limit` of them, or
    all), in order, a chunk at a time."""
    log = EmbeddedLog(log_dir)
    try:
        end = log.end_offsets()[0]
        if limit is not None:
            end = min(end, limit)
        pos = 0
        while pos < end:
            chunk = log.read(0, pos, min(READ, end - pos))
            for r in chunk:
                yield r.key, r.value
            pos += len(chunk)
    finally:
        log.close()


def run(ctx: Any) -> None:
    n = ctx.size("large")
    c.ensure_services(kafka=True, pg=True)
    log_dir, info = build_log(n)
    limit = QUICK_RECORDS if ctx.quick else None
    total = min(info["records"], limit or info["records"])
    whole = "the large log" if limit is None else f"the start of the large log ({n:,} events)"
    c.say(f"worker_memory: one Faust worker over {whole}, {total:,} records")
    with c.cleanup() as undo:
        topic = undo.topic(c.unique("duhub.bench.wmem."))
        ensure_topic(topic)
        fill = fill_topic(topic, log_records(log_dir, limit))
        c.say(f"worker_memory: topic filled in {fill:,.0f} s")
        db = undo.database(c.create_database())
        engine = create_engine(db.replace("postgresql://", "postgresql+psycopg2://", 1))
        undo.add(engine.dispose)
        workdir = ctx.workdir / "worker-memory"
        workdir.mkdir(parents=True, exist_ok=True)
        worker = run_worker_to_end(
            topic, db, engine, total, workdir, undo, sample_every=max(1, total // 20)
        )
        with engine.connect() as conn:
            seen = conn.execute(text("SELECT count(*) FROM events_seen")).scalar()
            dead = conn.execute(text("SELECT count(*) FROM dead_letters")).scalar()
    c.say(
        f"worker_memory: {total:,} records at {worker.rate:,.0f}/s, peak RSS "
        f"{worker.peak_mb:.0f} MB, events seen {seen:,}, dead letters {dead}, "
        f"restarts {worker.restarts}"
    )
    size = f"{total:,} records"
    met, note = c.at_target_size(n if limit is None else total, worker.peak_mb <= LIMIT_MB)
    ctx.results.add(
        c.Figure(
            "peak RSS, aggregate worker (Faust) through the large log",
            worker.peak_mb,
            "MB",
            [worker.peak_mb],
            target=f"≤ {LIMIT_MB} MB at 10M events",
            met=False if worker.peak_mb > LIMIT_MB else met,
            size=size,
            note=note,
        )
    )
    ctx.results.add(
        c.Figure(
            "aggregation through the large log, Faust worker → PostgreSQL",
            worker.rate,
            "events/s",
            [worker.rate],
            size=f"{size}, 1 worker, 12 partitions",
        )
    )
    ctx.results.details["worker_memory"] = {
        "records": total,
        "events": n,
        "log_records": info["records"],
        "fill_topic_s": round(fill, 1),
        "worker_seconds_steady": round(worker.steady_s, 1),
        "worker_seconds_with_startup": round(worker.with_startup_s, 1),
        "rss_mb_by_records_applied": worker.samples,
        "events_seen": seen,
        "dead_letters": dead,
        "worker_restarts": worker.restarts,
        "worker_exits": worker.exits,
    }
