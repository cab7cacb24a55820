"""Profile the slow paths in-process with cProfile (not part of `make bench`):

    python -m bench.profile replay [--events N] [--db postgresql]   # the fold + write of replay
    python -m bench.profile ingest [--events N]                     # ingest into Kafka + PG
    python -m bench.profile query  [--events N]                     # the five questions

Prints the top functions by cumulative and by own time and writes bench/.profiles/NAME.prof
(open it with `python -m pstats` or snakeviz). Uses the logs bench.replay caches.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench import common as c

OUT = Path(__file__).parent / ".profiles"


def _report(prof: cProfile.Profile, name: str, top: int) -> None:
    OUT.mkdir(exist_ok=True)
    prof.dump_stats(OUT / f"{name}.prof")
    for key in ("cumulative", "tottime"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).strip_dirs().sort_stats(key).print_stats(top)
        print(f"--- {name}, by {key}")
        print("\n".join(s.getvalue().splitlines()[: top + 12]))


def profile_replay(n: int, db: str, top: int) -> None:
    from bench.replay import build_log
    from duhub.log.embedded import EmbeddedLog
    from duhub.readmodel.engine import open_engine
    from services.aggregate.replay import replay

    log_dir, _ = build_log(n)
    with c.cleanup() as undo:
        if db == "postgresql":
            url = undo.database(c.create_database())
        else:
            path = c.WORK / "profile-replay.db"
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            url = f"sqlite:///{path}"
        engine = open_engine(url)
        undo.add(engine.dispose)
        prof = cProfile.Profile()
        prof.enable()
        result = replay(EmbeddedLog(log_dir), engine)
        prof.disable()
    print(f"replayed {result.done:,} events at {result.rate:,.0f}/s (under the profiler)")
    _report(prof, f"replay-{db}", top)


def profile_ingest(n: int, top: int) -> None:
    from bench.events import request_bytes, wire_stream
    from duhub.bootstrap import load_reference, open_log
    from duhub.readmodel.engine import open_engine
    from services.ingest.ingestor import Ingestor
    from services.ingest.request import read_request

    c.ensure_services()
    items, _, _ = wire_stream(n, seed=11, prefix="prof")
    requests = [request_bytes([v for _, v in items[i : i + 1000]]) for i in range(0, n, 1000)]
    with c.cleanup() as undo:
        topic = undo.topic(c.unique("duhub.bench.prof."))
        url = undo.database(c.create_database())
        log = open_log(c.kafka_url(topic))
        undo.add(log.close)
        engine = open_engine(url)
        undo.add(engine.dispose)
        ingestor = Ingestor(log, engine)
        load_reference(ingestor, engine)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for req in requests:
            ingestor.publish(read_request(req).events)
        prof.disable()
        seconds = time.perf_counter() - t0
    print(f"ingested {len(items):,} events at {len(items) / seconds:,.0f}/s (under the profiler)")
    _report(prof, "ingest", top)


def profile_query(n: int, top: int) -> None:
    from bench.query import questions
    from bench.replay import readmodel
    from duhub.convert import to_nanos
    from duhub.readmodel.coverage import coverage
    from duhub.readmodel.engine import open_engine
    from duhub.readmodel.statistics import statistics
    from services.query.service import GROUP_BY

    ctx = SimpleNamespace(shared={}, size=lambda _which: n)
    db, info = readmodel(ctx, "large")
    engine = open_engine(f"sqlite:///{db}", create=False)
    qs = questions(info)

    def ask(q: Any) -> None:
        r = q.request
        if q.kind == "coverage":
            coverage(engine, r.campaign_id, r.scope_unit_id)
            return
        lo = to_nanos(getattr(r, "from")) if r.HasField("from") else None
        hi = to_nanos(r.to) if r.HasField("to") else None
        statistics(engine, list(r.metrics), r.scope_unit_id, r.area, lo, hi, GROUP_BY[r.group_by])

    for q in qs:
        ask(q)  # warm
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(20):
        for q in qs:
            ask(q)
    prof.disable()
    engine.dispose()
    _report(prof, "query", top)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("what", choices=["replay", "ingest", "query"])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args()
    if a.what == "replay":
        profile_replay(a.events, a.db, a.top)
    elif a.what == "ingest":
        profile_ingest(a.events, a.top)
    else:
        profile_query(a.events, a.top)


if __name__ == "__main__":
    sys.exit(main())
