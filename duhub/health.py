"""Health that tells the truth: a service is NOT_SERVING while what it needs is unreachable.

A background thread probes the log (ingest) and the read model (ingest, query) every few
seconds and sets the gRPC health status (grpc.health.v1) of each service; they go back to
SERVING once the probes pass again (an aggregate worker probes both for its metrics only).
A request that meets an unreachable read model anyway is answered UNAVAILABLE (retry
later), not UNKNOWN.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2
from sqlalchemy import Engine, text
from sqlalchemy.exc import InterfaceError, OperationalError

from duhub.built_handlers import BuiltHandlers
from duhub.diskfull import disk_full, writes_refused
from duhub.metrics import DEPENDENCY_UP

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# What a dropped database connection raises through SQLAlchemy.
UNREACHABLE_DB = (OperationalError, InterfaceError)
# Trailing metadata on an UNAVAILABLE the hub itself answers (not reachable a moment, or
# behind): a client tells it from no hub at all, which gRPC answers UNAVAILABLE too.
HUB_UNAVAILABLE = ("duhub-unavailable", "1")


def abort_unavailable(context: grpc.ServicerContext, details: str) -> NoReturn:
    """Answer UNAVAILABLE (retry later) as the hub, marked so (HUB_UNAVAILABLE)."""
    context.set_trailing_metadata((HUB_UNAVAILABLE,))
    context.abort(grpc.StatusCode.UNAVAILABLE, details)
    raise AssertionError("unreachable")  # abort raises


def hub_answered(e: grpc.RpcError) -> bool:
    """Return whether an UNAVAILABLE came from a hub (abort_unavailable), not from no hub."""
    metadata = e.trailing_metadata() or ()  # type: ignore[attr-defined]
    return HUB_UNAVAILABLE in [tuple(m) for m in metadata]


@dataclass(frozen=True, slots=True)
class Check:
    """A named probe: returns normally when the dependency answers, raises when it does not."""

    name: str
    probe: Callable[[], object]
    # Whether the monitor logs its changes (not when what fails says so itself).
    logged: bool = True


def log_check(log_: object) -> Check:
    """The event log answers (KafkaLog.ping, EmbeddedLog.ping)."""
    return Check("log", getattr(log_, "ping"))  # noqa: B009 - every backend has ping


def database_check(engine: Engine) -> Check:
    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return Check("read model", probe)


# The read model answers but refuses this process's writes (its disk is full): the aggregator
# says so itself (services.aggregate.apply), so the monitor does not.
WRITES = "read model writes"


def writes_check(engine: Engine) -> Check:
    """Passes unless the aggregator of this process finds the read model's disk full."""

    def probe() -> None:
        why = writes_refused(engine)
        if why:
            raise RuntimeError(f"the read model's disk is full ({why})")

    return Check(WRITES, probe, logged=False)


def flag_check(name: str, flag: threading.Event) -> Check:
    """Passes while `flag` is set (ingest's "caught up with the log")."""

    def probe() -> None:
        if not flag.is_set():
            raise RuntimeError("not yet")

    return Check(name, probe)


class HealthMonitor:
    """Probe the checks every `interval` seconds; set each service SERVING only while all of
    its checks pass. `on_change(name, ok)` hears of every check that changes."""

    def __init__(
        self,
        servicer: health.HealthServicer,
        services: Mapping[str, Sequence[Check]],
        interval: float = PROBE_INTERVAL_S,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.servicer = servicer
        self.services = services
        self.interval = interval
        self.on_change = on_change
        self.ok: dict[str, bool] = {}
        # Names of the checks failing because a disk is full (said so, not "unreachable").
        self.full: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def probe_once(self) -> dict[str, bool]:
        with self._lock:  # the prober thread and a caller (ingest, once caught up) may race
            return self._probe()

    def _probe(self) -> dict[str, bool]:
        checks = {c.name: c for cs in self.services.values() for c in cs}
        for name, check in checks.items():
            try:
                check.probe()
                ok, why, full = True, "", False
            except Exception as e:  # any failure to answer is "unreachable", but a full disk
                ok, why, full = False, f"{type(e).__name__}: {e}", disk_full(e)
            was_full = name in self.full
            (self.full.add if full else self.full.discard)(name)
            if self.ok.get(name) != ok or (not ok and full != was_full):
                if not check.logged:
                    pass
                elif name == "ready":  # ingest's "caught up with the log", not a dependency
                    if ok:
                        log.info("health: caught up with the log: serving")
                elif ok and was_full:
                    log.warning("health: the %s's disk has room again", name)
                elif ok and name in self.ok:
                    log.warning("health: %s is reachable again", name)
                elif full:
                    log.warning("health: the %s's disk is full (%s)", name, why[:300])
                elif not ok:
                    log.warning("health: %s unreachable (%s)", name, why[:300])
                if self.on_change is not None:
                    self.on_change(name, ok)
            self.ok[name] = ok
        # A read model that answers but refuses the aggregator's writes is down for it: its
        # figures stand still (query still answers from it, so its health stays SERVING).
        for name in ("log", "read model"):
            if name in checks:
                up = self.ok[name] and (name != "read model" or self.ok.get(WRITES, True))
                DEPENDENCY_UP.labels(name.replace(" ", "_")).set(1 if up else 0)
        for service, cs in self.services.items():
            serving = all(self.ok.get(c.name, False) for c in cs)
            self.servicer.set(service, SERVING if serving else NOT_SERVING)
        return dict(self.ok)

    def start(self) -> HealthMonitor:
        self.probe_once()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.probe_once()
            except Exception:  # never let the prober die: health would freeze as it was
                log.exception("health probe failed")

    def stop(self) -> None:
        self._stop.set()


def watch_dependencies(log_: object, engine: Engine) -> HealthMonitor:
    """Probe the log and the read model of a process that serves no gRPC health (an aggregate
    worker), so that its metrics say which is down (`duhub_dependency_up`) and its log says
    when. Without it the worker's scrape only lost its lag while either was down."""
    checks = {"": [log_check(log_), database_check(engine), writes_check(engine)]}
    return HealthMonitor(health.HealthServicer(), checks).start()


class UnavailableInterceptor(grpc.ServerInterceptor):
    """Answer UNAVAILABLE when a handler finds the read model unreachable (a dropped or
    refused database connection): the caller retries later. Without it gRPC says UNKNOWN."""

    def __init__(self) -> None:
        self._built = BuiltHandlers()  # built once per method, not per call

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        return self._built.get(method, handler, lambda: _answering_unavailable(handler, method))


def _answering_unavailable(handler, method: str):  # type: ignore[no-untyped-def]
    """Return `handler` answering UNAVAILABLE where it finds the read model unreachable."""
    inner = handler.unary_unary

    def behavior(request, context):  # type: ignore[no-untyped-def]
        try:
            return inner(request, context)
        except UNREACHABLE_DB as e:
            log.warning("%s: read model unreachable: %s", method, e)
            abort_unavailable(context, "the read model is unreachable")

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
