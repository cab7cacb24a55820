"""Replay of the embedded log into SQLite, events/s, beside a raw reader that only reads and
parses the same log. The replay is duhub's own (services/aggregate/replay.py, what `duhub
replay` runs) in a process of its own, so its peak memory is its own too (with the SQLite
writer process a long replay starts: the peak is their sum).

The logs are written as ingest writes them (bench.events.stored_records through
`EmbeddedLog.append`) and kept under $DUHUB_BENCH_DIR/cache (deterministic for a size and seed,
so reused). Replay also builds the read models the query, baseline and memory benchmarks use:
the small one and the large one, each by one real replay whose time is reported. With
DUHUB_BENCH_REUSE=1 a read model built by an earlier run is reused (and labelled so).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common as c
from bench.events import StreamInfo, stored_records
from duhub.log.embedded import EmbeddedLog
from duhub.v1 import events_pb2 as pb

LOG_VERSION = 1
# Bumped when the read model's layout changes (2: grains by depth, WITHOUT ROWID tables; 3: year
# buckets for the city and the counties; 4: coverage rows carry their county).
READMODEL_VERSION = 4
SEED = 23
CHUNK = 20_000


def cache_dir() -> Path:
    d = c.WORK / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def build_log(n: int, seed: int = SEED) -> tuple[Path, dict[str, Any]]:
    """Return the directory of an embedded log of `n` events (built once) and its info."""
    d = cache_dir() / f"log-v{LOG_VERSION}-{n}-{seed}"
    marker = d / "info.json"
    if marker.exists():
        return d, json.loads(marker.read_text())
    shutil.rmtree(d, ignore_errors=True)
    c.say(f"replay: writing an embedded log of {n:,} events into {d}")
    t0 = time.perf_counter()
    log = EmbeddedLog(d)
    it, gen = stored_records(n, seed, prefix="rp")
    buf: list[tuple[bytes, bytes]] = []
    for kv in it:
        buf.append(kv)
        if len(buf) >= CHUNK:
            log.append(buf)
            buf = []
    if buf:
        log.append(buf)
    records = log.end_offsets()[0]
    log.close()
    info = _info(gen.info, records, time.perf_counter() - t0, d)
    marker.write_text(json.dumps(info))
    return d, info


def _info(info: StreamInfo, records: int, seconds: float, d: Path) -> dict[str, Any]:
    return {
        "events": info.events,
        "records": records,
        "kinds": dict(info.kinds),
        "campaigns": info.campaigns,
        "generate_and_write_s": round(seconds, 1),
        "bytes": (d / EmbeddedLog.FILE).stat().st_size,
    }


def replay_process(log_dir: Path, db: Path | str) -> dict[str, Any]:
    """Replay the log into a fresh SQLite file (or an empty PostgreSQL database, by URL) in a
    process of its own (duhub's replay(), as `duhub replay` runs it, without the digest of the
    result the command computes even with --no-compare); return its report and peak RSS."""
    if isinstance(db, Path):
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.replay", str(log_dir), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(c.ROOT),
    )
    watch = c.PeakWatcher(proc.pid, 0.25)
    try:
        out, err = proc.communicate(timeout=4 * 3600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    peak = watch.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"duhub replay failed ({proc.returncode}): {err[-2000:]}")
    report = json.loads(out)
    report["process_s"] = round(time.perf_counter() - t0, 2)
    report["peak_rss_mb"] = round(peak, 1)
    # The replay and its SQLite writer process, when it started one (their sum is the peak).
    report["peak_rss_mb_by_process"] = [round(v, 1) for v in watch.peaks.values() if v]
    return report


def raw_read(log_dir: Path) -> float:
    """Read and parse every record of the log; return events/s."""
    t0 = time.perf_counter()
    log = EmbeddedLog(log_dir)
    try:
        end = log.end_offsets()[0]
        parse = pb.Event.FromString
        pos = 0
        while pos < end:
            records = log.read(0, pos, 5000)
            for r in records:
                parse(r.value)
            pos += len(records)
    finally:
        log.close()
    return end / (time.perf_counter() - t0)


def readmodel(ctx: Any, which: str) -> tuple[Path, dict[str, Any]]:
    """Return the SQLite read model of the small or large log (replaying it once per run)."""
    models = ctx.shared.setdefault("readmodels", {})
    if which in models:
        return models[which]
    n = ctx.size(which)
    log_dir, info = build_log(n)
    db = cache_dir() / f"readmodel-v{READMODEL_VERSION}-{n}-{SEED}.db"
    sidecar = Path(str(db) + ".json")
    if os.environ.get("DUHUB_BENCH_REUSE") == "1" and sidecar.exists() and db.exists():
        report = json.loads(sidecar.read_text())
        report["reused_from_earlier_run"] = True
        c.say(f"replay: reusing the read model of {n:,} events built {report.get('built')}")
    else:
        c.say(f"replay: building the {which} read model ({n:,} events) with duhub replay")
        report = replay_process(log_dir, db)
        report["built"] = time.strftime("%Y-%m-%d %H:%M:%S")
        sidecar.write_text(json.dumps(report))
        c.say(
            f"replay: {which} read model built: {report['events_per_second']:,} events/s, "
            f"{report['seconds']} s, peak RSS {report['peak_rss_mb']:.0f} MB"
        )
    info = {**info, "log_dir": str(log_dir), "replay": report}
    models[which] = (db, info)
    return db, info


def run(ctx: Any) -> None:
    n = ctx.size("replay")
    log_dir, info = build_log(n)
    rates, raw_rates, runs = [], [], []
    for rep in range(ctx.repeats):
        db = ctx.workdir / f"replay-{rep}.db"
        report = replay_process(log_dir, db)
        raw = raw_read(log_dir)
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        rates.append(float(report["events_per_second"]))
        raw_rates.append(raw)
        runs.append(report)
        c.say(
            f"replay run {rep + 1}: {report['events_per_second']:,} events/s "
            f"({report['seconds']} s), raw read + parse {raw:,.0f}/s, "
            f"peak RSS {report['peak_rss_mb']:.0f} MB"
        )
    value, ref = c.median(rates), c.median(raw_rates)
    ctx.results.add(
        c.Figure(
            "replay, embedded log → SQLite",
            value,
            "events/s",
            rates,
            "raw read + parse of the log",
            ref,
            raw_rates,
            value / ref,
            "of raw",
            "≥ 150,000/s",
            value >= 150_000,
            f"{info['records']:,} records",
        )
    )
    details: dict[str, Any] = {
        "runs": runs,
        "log": {k: v for k, v in info.items() if k != "campaigns"},
    }
    details["postgresql"] = pg_runs = _replay_into_postgresql(ctx, log_dir)
    pg_rates = [float(r["events_per_second"]) for r in pg_runs]
    ctx.results.add(
        c.Figure(
            "replay, embedded log → PostgreSQL (the worker's fold and writes, without Faust)",
            c.median(pg_rates),
            "events/s",
            pg_rates,
            "the same replay into SQLite",
            value,
            rates,
            c.median(pg_rates) / value,
            "of SQLite",
            size=f"{info['records']:,} records",
        )
    )
    # The large read model, built by one replay (used by query, baseline_pg and memory).
    _, large = readmodel(ctx, "large")
    rep = large["replay"]
    ctx.results.add(
        c.Figure(
            "replay of the large log (builds the large read model)",
            float(rep["events_per_second"]),
            "events/s",
            [float(rep["events_per_second"])],
            target="≥ 150,000/s",
            met=rep["events_per_second"] >= 150_000,
            size=f"{large['records']:,} records",
            note=f"the replay took {rep['seconds']:,.0f} s"
            + (" (reused from an earlier run)" if rep.get("reused_from_earlier_run") else ""),
        )
    )
    details["large"] = {k: v for k, v in large.items() if k != "campaigns"}
    ctx.results.details["replay"] = details


def _replay_into_postgresql(ctx: Any, log_dir: Path) -> list[dict[str, Any]]:
    """The same replay into fresh PostgreSQL databases (write-behind: the next batch is folded
    while the last is written)."""
    c.ensure_services(kafka=False, pg=True)
    runs = []
    for rep in range(ctx.repeats):
        with c.cleanup() as undo:
            report = replay_process(log_dir, undo.database(c.create_database()))
        runs.append(report)
        c.say(
            f"replay into PostgreSQL run {rep + 1}: {report['events_per_second']:,} events/s "
            f"({report['seconds']} s), peak RSS {report['peak_rss_mb']:.0f} MB"
        )
    return runs


def _main(log_dir: str, url: str) -> None:
    """The replay process: open the log and the target as `duhub replay` does, replay, report."""
    from duhub.bootstrap import open_log
    from duhub.readmodel.engine import open_engine
    from duhub.runtime import tune_gc
    from services.aggregate.replay import replay

    tune_gc()  # as the duhub command does
    t0 = time.perf_counter()
    log = open_log(log_dir)
    target = open_engine(url)
    opened = time.perf_counter() - t0
    result = replay(log, target)
    report = {
        "replayed": result.done,
        "seconds": round(result.elapsed, 3),
        "events_per_second": round(result.rate),
        "open_log_and_target_s": round(opened, 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
