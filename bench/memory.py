"""Peak memory (VmHWM from /proc/PID/status) of the aggregate worker and of the query server.

- the query server: `duhub serve query` over the large read model, after the 200 req/s load
  of bench.query (its peak over the whole run);
- the replay of the large log, which folds with the same code (BatchApplier) as the worker.

The Faust worker itself is measured through the whole large log by bench.worker_memory (and
at the aggregation benchmark's size by bench.aggregate).
"""

from __future__ import annotations

from typing import Any

from bench import common as c
from bench.query import measure
from bench.replay import readmodel

LIMIT_MB = 500


def run(ctx: Any) -> None:
    _, large = readmodel(ctx, "large")
    q = measure(ctx, "large")
    size = f"{large['events']:,} events"
    rep = large["replay"]
    ctx.results.add(
        c.Figure(
            "peak RSS, replay of the large log (same fold as the worker)",
            float(rep["peak_rss_mb"]),
            "MB",
            [float(rep["peak_rss_mb"])],
            target=f"≤ {LIMIT_MB} MB at 10M events",
            met=False
            if rep["peak_rss_mb"] > LIMIT_MB
            else c.at_target_size(large["events"], True)[0],
            size=size,
            note=c.at_target_size(large["events"], True)[1],
        )
    )
    ctx.results.add(
        c.Figure(
            "peak RSS, query server after the 200 req/s load",
            q["server_peak_rss_mb"],
            "MB",
            [q["server_peak_rss_mb"]],
            size=size,
        )
    )
