"""Run duhub's benchmarks: `python -m bench [--quick] [--only NAME[,NAME…]] [--repeats N]
[--events-large N]`. Prints a table of medians with their references and ratios, and writes
bench/results.json. See bench/README.md."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common as c

# In the order they run: replay builds the read models query, baseline_pg and memory use.
BENCHMARKS = [
    "ingest",
    "aggregate",
    "freshness",
    "replay",
    "query",
    "baseline_pg",
    "memory",
    "worker_memory",
]

KAFKA_BENCHMARKS = ("ingest", "aggregate", "freshness", "worker_memory")

SIZES = {
    # name: (quick, full)
    "ingest": (10_000, 100_000),
    # Quick: 40k, so the rate spans several of the worker's 10,000-record batches after its
    # first commit (at 10k it rested on one batch of 1,350 records, timed to one poll).
    "aggregate": (40_000, 50_000),
    "replay": (25_000, 200_000),
    "small": (10_000, 10_000),
    "large": (200_000, 10_000_000),
    "freshness_seconds": (10, 20),
    "query_seconds": (10, 30),
}


@dataclass
class Context:
    quick: bool
    repeats: int
    large: int
    workdir: Path
    results: c.Results = field(default_factory=c.Results)
    shared: dict[str, Any] = field(default_factory=dict)

    def size(self, name: str) -> int:
        if name == "large":
            return self.large
        quick, full = SIZES[name]
        return quick if self.quick else full


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the short version (under 5 minutes)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    p.add_argument("--repeats", type=int, default=0, help="runs per figure (default 3; quick 1)")
    p.add_argument(
        "--events-large",
        type=int,
        default=0,
        help="events in the large log (default 10,000,000, the size the targets name: ~4 min "
        "to generate and ~13 min to replay the first time; quick 200,000)",
    )
    p.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    p.add_argument(
        "--merge",
        action="store_true",
        help="update --out: replace only the figures of the benchmarks run now",
    )
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"--only: unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
    quick = args.quick
    ctx = Context(
        quick=quick,
        repeats=args.repeats or (1 if quick else 3),
        large=args.events_large or SIZES["large"][0 if quick else 1],
        workdir=c.WORK / f"run-{os.getpid()}",
    )
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    facts = c.machine()
    t0 = time.monotonic()
    c.say(
        f"bench: {'quick' if quick else 'full'} mode, {ctx.repeats} run(s) per figure, "
        f"large log {ctx.large:,} events; load average {facts['load_average_at_start']}"
    )
    startup = c.ensure_services(
        kafka=any(n in names for n in KAFKA_BENCHMARKS),
        pg=any(n in names for n in (*KAFKA_BENCHMARKS, "baseline_pg")),
    )
    if any(n in names for n in (*KAFKA_BENCHMARKS, "baseline_pg")):
        c.drop_stale_databases()
    timings: dict[str, float] = {"services_startup_s": round(startup, 1)}
    ran: dict[str, dict[str, Any]] = {}
    for name in names:
        began = time.monotonic()
        c.say(f"== {name}")
        before = len(ctx.results.figures)
        try:
            importlib.import_module(f"bench.{name}").run(ctx)
        except Exception as e:  # noqa: BLE001 - one failed benchmark does not stop the others
            traceback.print_exc()
            ctx.results.errors[name] = f"{type(e).__name__}: {e}"
        for f in ctx.results.figures[before:]:
            f.bench = name
        timings[f"{name}_s"] = round(time.monotonic() - began, 1)
        ran[name] = {
            "mode": "quick" if quick else "full",
            "repeats": ctx.repeats,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average": list(os.getloadavg()),
        }
    total = time.monotonic() - t0
    timings["total_s"] = round(total, 1)
    facts["load_average_at_end"] = list(os.getloadavg())
    facts["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    figures = ctx.results.figures
    previous: dict[str, Any] = {}
    if args.merge and Path(args.out).exists():
        previous = json.loads(Path(args.out).read_text())
        kept = [c.Figure(**f) for f in previous.get("figures", []) if f.get("bench") not in ran]
        figures = sorted(
            kept + figures,
            key=lambda f: BENCHMARKS.index(f.bench) if f.bench in BENCHMARKS else 99,
        )
        ran = {**{k: v for k, v in previous.get("ran", {}).items() if k not in ran}, **ran}
        details = {k: v for k, v in previous.get("details", {}).items() if k not in names}
        ctx.results.details = {**details, **ctx.results.details}
        errors = {k: v for k, v in previous.get("errors", {}).items() if k not in names}
        ctx.results.errors = {**errors, **ctx.results.errors}
    out = {
        "mode": "quick" if quick else "full",
        "repeats": ctx.repeats,
        "sizes": {k: ctx.size(k) for k in ("ingest", "aggregate", "replay", "small", "large")},
        "machine": facts,
        "timings": timings,
        "ran": ran,
        "figures": [f.as_dict() for f in figures],
        "details": ctx.results.details,
        "errors": ctx.results.errors,
        "table": c.table(figures),
    }
    if previous:
        # The table is the earlier run's, updated: its machine facts stay; this run's go
        # beside the benchmarks it ran.
        for name in names:
            out["ran"][name]["machine"] = facts
            out["ran"][name]["timings"] = timings
        for key in ("mode", "repeats", "sizes", "machine", "timings"):
            out[key] = previous.get(key, out[key])
    c.dump_json(Path(args.out), out)
    print()
    print(header(out))
    print()
    print(out["table"])
    if ctx.results.errors:
        print()
        for name, err in ctx.results.errors.items():
            print(f"FAILED {name}: {err}")
    print(f"\nwritten {args.out} in {total:,.0f} s")
    if ctx.results.errors or os.environ.get("DUHUB_BENCH_KEEP"):
        print(f"the processes' output is kept in {ctx.workdir}")
    else:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return 1 if ctx.results.errors else 0


def header(out: dict[str, Any]) -> str:
    m = out["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    return (
        f"duhub benchmarks, {out['mode']} mode, median of {out['repeats']} run(s), "
        f"{m['started']}, commit {m['commit'][:12] or '?'}\n"
        f"machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gb']} GB; "
        f"load average at start {load} (shared machine: other work was running)"
    )


if __name__ == "__main__":
    sys.exit(main())
