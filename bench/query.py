"""GetStatistics and GetCoverage latency at 200 requests/s from concurrent clients, over the
small (10,000 events) and the large read model, served by `duhub serve query --db sqlite:///…`
(the read models replay built from the embedded logs).

Load: an open-loop schedule (request i is due at t0 + i/200 s) spread over 8 client threads,
each with its own gRPC channel; a latency runs from the request's due time to its reply, so a
slow answer delays the ones behind it and that delay is counted (no coordinated omission).
The questions cycle through: the city by county over a year, a county by month over a year,
a county over a period with sub-day edges (problems_open included), a campaign's coverage for
the city and for one county. Each question is also timed alone (sequentially, 20 times) for
the per-question comparison with PostgreSQL GROUP BY (bench.baseline_pg).

Everything is measured twice per read model, on four servers started together: as served (the
answer cache on: repeated questions are answered from it until the read model changes) and with
--answer-cache 0 (every answer computed: the service time a question costs after each change).
The per-question comparison uses the latter. The load runs on the four in turn, round after
round, so a large figure and its small reference share the machine's spell, and the large/small
ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench import common as c
from bench.replay import readmodel
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc

RATE = 200
THREADS = 8
GRACE_S = 5.0
SATURATED = (
    "fewer answered than offered: the server is saturated and the latencies above are "
    f"mostly queueing (requests still unsent {GRACE_S:g} s after the schedule ended count "
    "with their wait so far: lower bounds); 'per question' below is the service time"
)
SEQUENTIAL = 20
COUNTY = "420581"
YEAR = ("2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z")
EDGES = ("2023-03-15T08:17:23Z", "2023-09-02T13:42:05Z")


def ts(text: str) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC))
    return t


@dataclass(frozen=True)
class Question:
    name: str
    kind: str  # "statistics" | "coverage"
    request: Any


def pick_campaign(campaigns: list[list[Any]]) -> tuple[str, int, int]:
    """Return the campaign running in mid-2023 (or the first one)."""
    mid = int(datetime(2023, 6, 15, tzinfo=UTC).timestamp()) * 1_000_000_000
    for cid, starts, ends in campaigns:
        if starts <= mid < ends:
            return cid, starts, ends
    cid, starts, ends = campaigns[0]
    return cid, starts, ends


def questions(info: dict[str, Any]) -> list[Question]:
    campaign = pick_campaign(info["campaigns"])[0]
    m = ["visits", "problems_found", "problems_rectified", "accountability_persons"]
    m += ["sanctioned_persons", "talk_persons"]
    return [
        Question(
            "city by county, one year",
            "statistics",
            qpb.GetStatisticsRequest(
                metrics=m,
                **{"from": ts(YEAR[0])},
                to=ts(YEAR[1]),
                group_by=qpb.GROUP_BY_UNIT,
            ),
        ),
        Question(
            "a county by month, one year",
            "statistics",
            qpb.GetStatisticsRequest(
                metrics=["visits", "problems_found", "sanctioned_persons"],
                scope_unit_id=COUNTY,
                **{"from": ts(YEAR[0])},
                to=ts(YEAR[1]),
                group_by=qpb.GROUP_BY_MONTH,
            ),
        ),
        Question(
            "a county, sub-day edges",
            "statistics",
            qpb.GetStatisticsRequest(
                metrics=["visits", "problems_found", "problems_rectified", "problems_open"],
                scope_unit_id=COUNTY,
                **{"from": ts(EDGES[0])},
                to=ts(EDGES[1]),
            ),
        ),
        Question("coverage, city", "coverage", qpb.GetCoverageRequest(campaign_id=campaign)),
        Question(
            "coverage, one county",
            "coverage",
            qpb.GetCoverageRequest(campaign_id=campaign, scope_unit_id=COUNTY),
        ),
    ]


def ask(stub: query_pb2_grpc.QueryServiceStub, q: Question) -> Any:
    if q.kind == "statistics":
        return stub.GetStatistics(q.request, timeout=30)
    return stub.GetCoverage(q.request, timeout=30)


def open_loop(address: str, qs: list[Question], seconds: float) -> dict[str, list[float]]:
    """Run the schedule; return latencies (ms) per kind and the errors.

    The run is bounded: requests still unsent GRACE_S after the schedule ends are not sent;
    each counts with the time from its due time to then (a lower bound), in `unsent`.
    """
    total = int(RATE * seconds)
    lat: dict[str, list[float]] = {"statistics": [], "coverage": [], "errors": [], "unsent": []}
    lock = threading.Lock()
    t0 = time.perf_counter() + 0.5
    stop_at = t0 + seconds + GRACE_S

    def client(k: int) -> None:
        channel = grpc.insecure_channel(address)
        stub = query_pb2_grpc.QueryServiceStub(channel)
        mine: dict[str, list[float]] = {
            "statistics": [],
            "coverage": [],
            "errors": [],
            "unsent": [],
        }
        try:
            for i in range(k, total, THREADS):
                due = t0 + i / RATE
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                q = qs[i % len(qs)]
                if time.perf_counter() > stop_at:
                    mine[q.kind].append((stop_at - due) * 1000)
                    mine["unsent"].append(1.0)
                    continue
                try:
                    ask(stub, q)
                    mine[q.kind].append((time.perf_counter() - due) * 1000)
                except grpc.RpcError as e:
                    mine["errors"].append(float(e.code().value[0]))
        finally:
            channel.close()
            with lock:
                for key, v in mine.items():
                    lat[key] += v

    threads = [threading.Thread(target=client, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 300)
    lat["elapsed_s"] = [min(time.perf_counter(), stop_at) - t0]
    return lat


def sequential(address: str, qs: list[Question], reps: int = SEQUENTIAL) -> dict[str, float]:
    """Return the median latency (ms) of each question asked alone, one after another."""
    channel = grpc.insecure_channel(address)
    stub = query_pb2_grpc.QueryServiceStub(channel)
    out = {}
    try:
        for q in qs:
            ask(stub, q)  # warm
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                ask(stub, q)
                times.append((time.perf_counter() - t) * 1000)
            out[q.name] = c.median(times)
    finally:
        channel.close()
    return out


# The two servers of each read model: (mode, answer cache on).
SERVER_MODES = (("served", True), ("cold", False))


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for kind in ("statistics", "coverage"):
        for p in ("p50_ms", "p99_ms"):
            out[f"{kind}_{p}"] = c.median([r[kind][p] for r in runs])
            out[f"{kind}_{p}_runs"] = [r[kind][p] for r in runs]
    return out


def _one_run(address: str, qs: list[Question], seconds: float) -> dict[str, Any]:
    lat = open_loop(address, qs, seconds)
    run: dict[str, Any] = {
        kind: {
            "p50_ms": c.percentile(lat[kind], 50),
            "p99_ms": c.percentile(lat[kind], 99),
            "max_ms": max(lat[kind]) if lat[kind] else None,
            "n": len(lat[kind]),
        }
        for kind in ("statistics", "coverage")
    }
    run["errors"] = len(lat["errors"])
    run["unsent"] = len(lat["unsent"])
    done = len(lat["statistics"]) + len(lat["coverage"]) - run["unsent"]
    run["achieved_req_per_s"] = round(done / lat["elapsed_s"][0], 1)
    return run


def measure_all(ctx: Any) -> dict[str, Any]:
    """Serve both read models twice each (answer cache on, and --answer-cache 0), time each
    question alone, then run the open-loop load on the four servers in turn, round after
    round: the small and the large figure of a round are measured minutes apart at most, so
    the machine's slow and fast spells (its speed varies ~1.6x) fall on both, and each
    large/small ratio is taken within a round (`paired_ratios`)."""
    if "query" in ctx.shared:
        return ctx.shared["query"]
    seconds = ctx.size("query_seconds")
    sizes = {which: readmodel(ctx, which) for which in ("small", "large")}
    qs = {which: questions(info) for which, (_, info) in sizes.items()}
    out: dict[str, Any] = {}
    with c.cleanup() as undo:
        servers, watches, per_question = {}, {}, {}
        for which, (db, _) in sizes.items():
            for mode, cache in SERVER_MODES:
                wd = ctx.workdir / f"query-{which}-{mode}"
                wd.mkdir(parents=True, exist_ok=True)
                options = ["--db", f"sqlite:///{db}", "--data-dir", str(wd)]
                if not cache:
                    options += ["--answer-cache", "0"]
                server = undo.proc(c.serve("query", *options, log=wd / "q.out"))
                servers[which, mode] = server
                watches[which, mode] = c.PeakWatcher(server.pid)
                per_question[which, mode] = sequential(server.address, qs[which])
                c.say(
                    f"query {which} ({mode}): alone, per question (ms): {per_question[which, mode]}"
                )
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in servers}
        for rep in range(ctx.repeats):
            # Alternate which size goes first, so neither always follows the other.
            order = ("small", "large") if rep % 2 == 0 else ("large", "small")
            for mode, _ in SERVER_MODES:
                for which in order:
                    run = _one_run(servers[which, mode].address, qs[which], seconds)
                    runs[which, mode].append(run)
                    c.say(
                        f"query {which} ({mode}) run {rep + 1}: statistics p50 "
                        f"{run['statistics']['p50_ms']:.1f} ms p99 "
                        f"{run['statistics']['p99_ms']:.1f} ms; coverage p50 "
                        f"{run['coverage']['p50_ms']:.1f} ms p99 "
                        f"{run['coverage']['p99_ms']:.1f} ms; answered "
                        f"{run['achieved_req_per_s']} req/s of {RATE} offered; "
                        f"errors {run['errors']}"
                    )
        peaks = {key: w.stop() for key, w in watches.items()}
    for which, (_, info) in sizes.items():
        by_mode = {
            mode: {
                **_summary(runs[which, mode]),
                "per_question_ms": per_question[which, mode],
                "server_peak_rss_mb": round(peaks[which, mode], 1),
            }
            for mode, _ in SERVER_MODES
        }
        out[which] = {
            "events": info["events"],
            "records": info["records"],
            "campaign": pick_campaign(info["campaigns"])[0],
            "questions": [q.name for q in qs[which]],
            **by_mode,
            "per_question_ms": by_mode["cold"]["per_question_ms"],
            "per_question_cached_ms": by_mode["served"]["per_question_ms"],
            # The memory benchmark reads this: the server as run by default.
            "server_peak_rss_mb": by_mode["served"]["server_peak_rss_mb"],
        }
    ctx.shared["query"] = out
    return out


def measure(ctx: Any, which: str) -> dict[str, Any]:
    """Return the figures of one read model ("small" or "large"), measuring both once per
    run. `per_question_ms` is the computed service time (answer cache off)."""
    return measure_all(ctx)[which]


def paired_ratios(large: list[float], small: list[float]) -> list[float]:
    """Return large / small per round (the two measured in the same round)."""
    return [a / b for a, b in zip(large, small, strict=True) if b]


MODES = (
    ("served", "", "as served, answer cache on"),
    ("cold", " (answer cache off)", "every answer computed"),
)


def run(ctx: Any) -> None:
    small, large = measure(ctx, "small"), measure(ctx, "large")
    size_s, size_l = f"{small['events']:,} events", f"{large['events']:,} events"
    for mode, suffix, _ in MODES:
        for kind, label in (("statistics", "GetStatistics"), ("coverage", "GetCoverage")):
            for which, res, size in (("small", small, size_s), ("large", large, size_l)):
                for p in ("p50", "p99"):
                    value = res[mode][f"{kind}_{p}_ms"]
                    fig = c.Figure(
                        f"{label} {p} at {RATE} req/s{suffix}",
                        value,
                        "ms",
                        res[mode][f"{kind}_{p}_ms_runs"],
                        size=size,
                    )
                    if which == "large":
                        fig.reference = f"at {small['events']:,} events"
                        fig.reference_value = small[mode][f"{kind}_{p}_ms"]
                        fig.reference_runs = small[mode][f"{kind}_{p}_ms_runs"]
                        # Each round's large / small, then their median: the two sizes
                        # of a round met the same spell of the shared machine.
                        fig.ratio = c.median(
                            paired_ratios(
                                res[mode][f"{kind}_{p}_ms_runs"],
                                small[mode][f"{kind}_{p}_ms_runs"],
                            )
                        )
                        fig.ratio_note = "large / small, median of the rounds' ratios"
                    if p == "p99":
                        fig.target = "≤ 10 ms" + (
                            "; large ≤ 1.2× small" if which == "large" else ""
                        )
                        fig.met = value <= 10 and (which == "small" or (fig.ratio or 0) <= 1.2)
                    ctx.results.add(fig)
        for res, size in ((small, size_s), (large, size_l)):
            got = [r["achieved_req_per_s"] for r in res[mode]["runs"]]
            ctx.results.add(
                c.Figure(
                    f"query server answered, of {RATE} req/s offered{suffix}",
                    c.median(got),
                    "req/s",
                    got,
                    size=size,
                    note=SATURATED if c.median(got) < 0.95 * RATE else "",
                )
            )
    ctx.results.details["query"] = {"small": small, "large": large, "rate": RATE}
