"""Prometheus metrics of the hub's services, served over HTTP by `--metrics HOST:PORT`.

| metric | what |
| --- | --- |
| `duhub_ingest_events_total{result}` | events answered by ingest: accepted, duplicate, rejected |
| `duhub_ingest_rejections_total{field}` | rejections by the field named (no free text nor index) |
| `duhub_ingest_requests_total{code}` | publish calls by gRPC status (UNAVAILABLE: log down…) |
| `duhub_ingest_batch_seconds` | time to answer one publish call |
| `duhub_aggregate_applied_total` | log records applied to the read model by this process |
| `duhub_aggregate_lag{partition}` | log end minus the read model's applied position |
| `duhub_append_to_readmodel_seconds` | from an event's recorded_at to its commit in the model |
| `duhub_query_seconds{rpc}` | time to answer a query RPC |
| `duhub_dependency_up{dependency}` | 1 while the health probe reaches the log / read model |

A process serves the metrics of the roles it runs (`ROLE_METRICS`) and those of every process:
`duhub serve query` no ingest counters, `duhub up` (every role) all.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from duhub import build
from duhub.built_handlers import BuiltHandlers

log = logging.getLogger(__name__)
# No `_created` series beside every counter and histogram: half the lines, nothing lost.
disable_created_metrics()

INGEST_SERVICE = "duhub.v1.IngestService"
QUERY_SERVICE = "duhub.v1.QueryService"

LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# How long a scrape waits for the lag: a log or read model that does not answer goes without.
LAG_TIMEOUT_S = 2.0
FRESHNESS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

INGEST_EVENTS = Counter("duhub_ingest_events", "Events answered by ingest, by result", ["result"])
INGEST_REJECTIONS = Counter(
    "duhub_ingest_rejections", "Events rejected by ingest, by the field named", ["field"]
)
INGEST_REQUESTS = Counter("duhub_ingest_requests", "Publish calls by gRPC status", ["code"])
INGEST_BATCH = Histogram(
    "duhub_ingest_batch_seconds", "Time to answer one publish call", buckets=LATENCY
)
AGGREGATE_APPLIED = Counter(
    "duhub_aggregate_applied", "Log records applied to the read model by this process"
)
# Said once a refused record is stored (its batch committed), as its log line: what ops alert
# on, where a county publishing straight into Kafka learns of its refusals from the topic.
AGGREGATE_DEAD_LETTERS = Counter(
    "duhub_aggregate_dead_letters",
    "Log records this process stored as dead letters, by the field their reason names",
    ["field"],
)
APPEND_TO_READMODEL = Histogram(
    "duhub_append_to_readmodel_seconds",
    "From an event's recorded_at (its append) to the commit that put it in the read model",
    buckets=FRESHNESS,
)
QUERY_SECONDS = Histogram(
    "duhub_query_seconds", "Time to answer a query RPC", ["rpc"], buckets=LATENCY
)
# Calls turned away by a caller's share (services.admission): at the door they reach no
# other interceptor, so duhub_ingest_requests and duhub_query_seconds never see them.
CALLS_REFUSED = Counter(
    "duhub_calls_refused", "Calls refused before they were served, by why", ["why"]
)
DEPENDENCY_UP = Gauge(
    "duhub_dependency_up", "1 while the health probe reaches the dependency", ["dependency"]
)
# Which build serves: duhub_build_info{version, commit, modified} 1 (duhub.build).
BUILD = Info("duhub_build", "The duhub build this process runs")

# The metrics of each role, served only by a process that runs it: every process made them all
# (they are made on import), and served the others' at 0 (a query server's
# duhub_ingest_batch_seconds_count 0, an ingest's duhub_aggregate_applied_total 0), misleading
# a scraper. Those of no role here (duhub_dependency_up, duhub_build_info, duhub_aggregate_lag
# where `watch_lag` adds it, Python's own) are every process's.
ROLES = ("ingest", "aggregate", "query")
ROLE_METRICS = {
    "ingest": (INGEST_EVENTS, INGEST_REJECTIONS, INGEST_REQUESTS, INGEST_BATCH, CALLS_REFUSED),
    "aggregate": (AGGREGATE_APPLIED, AGGREGATE_DEAD_LETTERS, APPEND_TO_READMODEL),
    "query": (QUERY_SECONDS, CALLS_REFUSED),
}


def hidden_of(roles: Iterable[str]) -> set[str]:
    """Return the names of the metric families of the roles not in `roles`."""
    ours = {m for role in roles for m in ROLE_METRICS[role]}
    theirs = {m for metrics in ROLE_METRICS.values() for m in metrics} - ours
    return {family.name for m in theirs for family in m.describe()}


class RolesView:
    """What /metrics serves of `registry`: every family but those `hidden`."""

    def __init__(self, registry: Any, hidden: set[str]) -> None:
        self.registry = registry
        self.hidden = hidden

    def collect(self) -> Iterator[Any]:
        return (family for family in self.registry.collect() if family.name not in self.hidden)

    def restricted_registry(self, names: Iterable[str]) -> RolesView:
        """A scrape naming the series it wants (`?name[]=…`): of those served."""
        return RolesView(self.registry.restricted_registry(names), self.hidden)


def start_metrics(listen: str, roles: Iterable[str] = ROLES) -> str:
    """Serve /metrics on HOST:PORT (port 0: any), of `roles` (`RolesView`); return its URL."""
    host, port = listen.rsplit(":", 1)
    BUILD.info(build.labels())  # asked of git once, and only by processes serving metrics
    served = RolesView(REGISTRY, hidden_of(roles))
    server, _ = start_http_server(int(port), addr=host, registry=served)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.server_port}/metrics"


def serve_metrics(listen: str, *, required: bool = True, roles: Iterable[str] = ROLES) -> str:
    """Start the /metrics endpoint of `roles` (those the process runs) unless `listen` is
    empty or "off"; return its URL or "".

    A default address already in use (a second hub on the machine) is only a warning when not
    `required`; an address asked for explicitly that cannot be bound raises OSError.
    """
    if listen.strip().lower() in ("", "off", "none"):
        return ""
    try:
        return start_metrics(listen, roles)
    except (OSError, ValueError) as e:
        if required:
            raise OSError(f"--metrics: cannot serve metrics on {listen}: {e}") from None
        log.warning("metrics off: cannot bind %s (%s); choose one with --metrics", listen, e)
        return ""


def observe_publish(response: Any, seconds: float) -> None:
    """Count the answers of one publish call (a duhub.v1.PublishResponse)."""
    INGEST_BATCH.observe(seconds)
    INGEST_REQUESTS.labels("OK").inc()
    # The response's counts, not a label lookup per event: this runs for every batch.
    for name in ("accepted", "duplicate", "rejected"):
        if n := getattr(response, name):
            INGEST_EVENTS.labels(name).inc(n)
    if response.rejected:
        for r in response.results:
            if r.result == 3:
                INGEST_REJECTIONS.labels(field_label(r.field)).inc()


# A list element's index in a field path: `groups[3].target_unit_ids[17]`.
_INDEX = re.compile(r"\[\d+\]")


def field_label(field: str) -> str:
    """The `field` label of a rejection: the field's path without list indices, so the label
    takes one value per field of the schema, not one per element a client may send (a
    campaign's 100,000 targets made as many series)."""
    return _INDEX.sub("[]", field) if field else "unknown"


def observe_dead_letter(field: str) -> None:
    """Count a dead letter stored, by the field it names."""
    AGGREGATE_DEAD_LETTERS.labels(field_label(field)).inc()


def observe_applied(records: int, recorded_at_ns: Iterable[int]) -> None:
    """Count records a live driver committed, and how long after their append they did."""
    if records:
        AGGREGATE_APPLIED.inc(records)
    now = time.time_ns()
    for at in recorded_at_ns:
        if at > 0:
            APPEND_TO_READMODEL.observe(max(0.0, (now - at) / 1e9))


class LagCollector(Collector):
    """`duhub_aggregate_lag{partition}`, computed when scraped: the log's end offsets minus
    the positions committed in the read model (the same figure from every worker); 0 where
    `holds_all(partition, position, end)` says only transaction markers and aborted records
    lie between."""

    def __init__(
        self,
        ends: Callable[[], dict[int, int]],
        applied: Callable[[], dict[int, int]],
        holds_all: Callable[[int, int, int], bool] | None = None,
        timeout: float = LAG_TIMEOUT_S,
    ):
        self.ends = ends
        self.applied = applied
        self.holds_all = holds_all
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pending: threading.Thread | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "duhub_aggregate_lag", "Log records not yet applied to the read model", labels=["p"]
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "duhub_aggregate_lag",
            "Log records not yet applied to the read model, per partition",
            labels=["partition"],
        )
        lag = self._measure_in_time()
        if lag is None:
            return
        for p, n in sorted(lag.items()):
            family.add_metric([str(p)], n)
        yield family

    def _measure_in_time(self) -> dict[int, int] | None:
        """Measure in a thread of its own and wait `timeout` for it: a log or read model that
        does not answer (a broker gone: kafka-python waits 305 s) must not hold the scrape,
        whose other figures (duhub_dependency_up) say what is down. One measurement at a
        time: while one still waits, scrapes go without the lag."""
        with self._lock:
            if self._pending is not None and self._pending.is_alive():
                return None
            box: list[dict[int, int]] = []
            self._pending = threading.Thread(
                target=self._measure_into, args=(box,), name="lag", daemon=True
            )
            self._pending.start()
            pending = self._pending
        pending.join(self.timeout)
        return box[0] if box else None

    def _measure_into(self, box: list[dict[int, int]]) -> None:
        try:
            ends, applied = self.ends(), self.applied()
            lag = {p: max(0, end - applied.get(p, 0)) for p, end in ends.items()}
            if self.holds_all is not None:
                for p, n in lag.items():
                    if n and self.holds_all(p, applied.get(p, 0), ends[p]):
                        lag[p] = 0  # nothing to apply lies between
        except Exception as e:  # the log or the read model is down: no figure, not a 500
            log.debug("lag not measured: %s", e)
            return
        box.append(lag)


def lag_collector(log_: Any, applied: Callable[[], dict[int, int]]) -> LagCollector:
    """Return the lag collector of a log (an EventLog) and the read model's positions."""
    from duhub.log.base import holds_all

    return LagCollector(log_.end_offsets, applied, lambda p, at, end: holds_all(log_, p, at, end))


def watch_lag(log_: Any, applied: Callable[[], dict[int, int]]) -> None:
    """Register the lag collector (once per process)."""
    REGISTRY.register(lag_collector(log_, applied))


class MetricsInterceptor(grpc.ServerInterceptor):
    """Times ingest and query RPCs and counts ingest's answers, without touching servicers."""

    def __init__(self) -> None:
        self._built = BuiltHandlers()  # built once per method, not per call

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return self._built.get(method, handler, lambda: self._timed(handler, method))

    def _timed(self, handler, method: str):  # type: ignore[no-untyped-def]
        service, _, rpc = method.lstrip("/").rpartition("/")
        if service == INGEST_SERVICE and handler.unary_unary is not None:
            return _unary(handler, _ingest_timer(handler.unary_unary))
        if service == INGEST_SERVICE and handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _ingest_stream(handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if service == QUERY_SERVICE and handler.unary_unary is not None:
            return _unary(handler, _query_timer(handler.unary_unary, rpc))
        return handler


def _unary(handler, behavior):  # type: ignore[no-untyped-def]
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _code(context: grpc.ServicerContext) -> str:
    try:
        code = context.code()  # type: ignore[attr-defined]
    except Exception:
        code = None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _ingest_timer(inner):  # type: ignore[no-untyped-def]
    def behavior(request, context):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            response = inner(request, context)
        except BaseException:
            INGEST_BATCH.observe(time.perf_counter() - t0)
            INGEST_REQUESTS.labels(_code(context)).inc()
            raise
        observe_publish(response, time.perf_counter() - t0)
        return response

    return behavior


def _ingest_stream(inner):  # type: ignore[no-untyped-def]
    def behavior(request_iterator, context):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            for response in inner(request_iterator, context):
                observe_publish(response, time.perf_counter() - t0)
                yield response
                t0 = time.perf_counter()
        except BaseException:
            INGEST_REQUESTS.labels(_code(context)).inc()
            raise

    return behavior


def _query_timer(inner, rpc: str):  # type: ignore[no-untyped-def]
    timer = QUERY_SECONDS.labels(rpc)

    def behavior(request, context):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return inner(request, context)
        finally:
            timer.observe(time.perf_counter() - t0)

    return behavior
