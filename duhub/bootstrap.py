"""The composition root: build the hub's parts from configuration. Nothing is wired at import."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from kafka.errors import KafkaError
from sqlalchemy import Engine, event, func, select

from duhub.auth.listen import check_listen, is_unix
from duhub.convert import content_digest, event_from_pb
from duhub.feed import ChangeFeed
from duhub.health import (
    UNREACHABLE_DB,
    Check,
    HealthMonitor,
    UnavailableInterceptor,
    database_check,
    flag_check,
    log_check,
    writes_check,
)
from duhub.log.base import EventLog
from duhub.log.belongs import check_belongs
from duhub.log.embedded import EmbeddedLog
from duhub.log.spec import is_kafka
from duhub.metrics import MetricsInterceptor
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.readmodel.knowledge import ReadModelKnowledge
from duhub.readmodel.log_fills import fill_from_log
from duhub.readmodel.reference import Mark, fingerprint, read_mark, reference_held, write_mark
from duhub.reference import Reference, shipped
from duhub.reference.file import check_units
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2, query_pb2
from services.admission import CallerShares
from services.aggregate.embedded import LogTailer
from services.auth.guard import OPEN, Security
from services.ingest.ingestor import MAX_BATCH, Ingestor, NotReady
from services.ingest.request import add_ingest_service
from services.ingest.service import IngestServicer
from services.query.answers import DEFAULT_SIZE as ANSWER_CACHE
from services.query.answers import AnswerCache
from services.query.changes import follow_changes
from services.query.http import DashboardServer, start_dashboard
from services.query.request import add_query_service
from services.query.service import QueryServicer
from services.reflection import enable_reflection
from services.shares import CallShares, calls_per_caller
from services.slots import CALL_THREADS, MAX_STREAMS, QUEUED_CALLS, caller_share, concurrent_rpcs

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:50051"
INGEST_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name
QUERY_SERVICE = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name
MAX_MESSAGE = 32 * 1024 * 1024
# `duhub serve query` on SQLite: pooled read-model connections, the page cache of each.
QUERY_CONNECTIONS = 4
QUERY_CACHE_MIB = 16


@dataclass(frozen=True, slots=True)
class HubConfig:
    data_dir: Path
    listen: str = DEFAULT_LISTEN
    db_url: str = ""
    log_url: str = ""
    # The dashboard's HTTP address (HOST:PORT, port 0: any); empty: no dashboard.
    http: str = ""
    # Credentials (services/auth): a certificate directory (server.crt, server.key, ca.crt)
    # and/or a token file. With neither, only loopback addresses may be listened on.
    tls_dir: str = ""
    tokens: str = ""
    # With credentials, serve in-process clients (the simulator) on a private unix socket.
    private_socket: bool = False
    # Query answers kept until the read model changes (services/query/answers); 0: none.
    answer_cache: int = ANSWER_CACHE
    # WatchCoverage, PublishStream, reflection and dashboard event streams open at once, each
    # kind (services/slots), and one caller's share of them (None: a quarter).
    max_streams: int = MAX_STREAMS
    max_streams_per_caller: int | None = None
    # The reference hierarchy to load (`--reference FILE`); None: the shipped Yichang one.
    reference: Reference | None = None

    def __post_init__(self) -> None:
        # Refused before anything is opened (ValueError naming the option).
        caller_share(self.max_streams, self.max_streams_per_caller)

    @property
    def database(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'readmodel.db'}"

    @property
    def log_spec(self) -> str:
        return self.log_url or str(self.data_dir)


def make_data_dir(path: Path) -> None:
    """Make the data dir (and its parents) where it is not yet, before anything is opened in
    it; ValueError naming --data-dir when it cannot be one (a file there, no permission)."""
    try:
        # Only its owner may enter it: the log and the read model hold every county's events
        # and figures, which other local users read in files made 0644 (security probe). A
        # directory there already keeps its mode.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"--data-dir: {path} is not a directory") from None
    except OSError as e:
        raise ValueError(f"--data-dir: cannot make {path}: {e.strerror}") from None
    _warn_if_open(path)


def _warn_if_open(path: Path) -> None:
    """Warn when other local users may enter the data dir: one made before 2026-12-06 (0755)
    kept its mode on upgrade, without a word to the operator upgrading for that fix."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "--data-dir: %s is open to other local users (mode %04o), who can read every "
            "county's events and figures in it; make it its owner's only: chmod 700 %s",
            path, mode, path,
        )  # fmt: skip


def dashboard_of(
    config: HubConfig, engine: Engine, feed: ChangeFeed, security: Security, answers: AnswerCache
) -> DashboardServer:
    """Start the dashboard at config.http, with the gRPC server's answers and stream caps."""
    return start_dashboard(
        config.http,
        engine,
        feed,
        security,
        answers,
        config.max_streams,
        config.max_streams_per_caller,
    )


def open_log(spec: str, *, create: bool = True) -> EventLog:
    """Return the log for kafka://HOST:PORT or a data directory path; a Kafka topic absent
    is created, or with `create` false refused (ValueError), as a reader of history must."""
    if is_kafka(spec):
        from duhub.log.kafka import KafkaLog, KafkaSpec

        return KafkaLog(KafkaSpec.parse(spec), create=create)
    return EmbeddedLog(spec)


def load_security(config: HubConfig) -> Security:
    """Read the credentials; refuse (ValueError naming the option) to listen on a
    non-loopback address without any. Nothing is bound yet."""
    security = Security.load(config.tls_dir, config.tokens)
    check_listen(config.listen, "--listen", security.secured)
    if config.http:
        check_listen(config.http, "--http", security.secured)
    return security


def create_server(
    listen: str,
    *,
    ingest: IngestServicer | None = None,
    query: QueryServicer | None = None,
    security: Security = OPEN,
    max_streams: int = MAX_STREAMS,
    max_streams_per_caller: int | None = None,
    call_threads: int = CALL_THREADS,
    queued_calls: int = QUEUED_CALLS,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Return a server with the given services, health and reflection (not started);
    reflection streams are capped at `max_streams`, a caller at `max_streams_per_caller` of
    them, as the servicers' own streams are. Beyond its threads it lets `queued_calls` calls
    wait, and refuses the next RESOURCE_EXHAUSTED at once."""
    check_listen(listen, "--listen", security.secured)
    # A thread for every stream the servicers and reflection may hold open (services.slots),
    # and the threads for calls beside them.
    servicers = [x.streams for x in (ingest, query) if x is not None]
    threads = call_threads + sum(s.limit for s in servicers) + max_streams
    # One caller may have in flight the streams it may hold and a share of the calls.
    stream_shares = sum(s.per_caller for s in servicers)
    stream_shares += caller_share(max_streams, max_streams_per_caller)  # reflection's
    shares = CallShares(calls_per_caller(call_threads + queued_calls, stream_shares))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads),
        maximum_concurrent_rpcs=concurrent_rpcs(threads, queued_calls),
        # First, a caller past its share refused before anything else is done (services.
        # admission); metrics of every RPC; an unreachable read model answers UNAVAILABLE.
        interceptors=[
            CallerShares(shares, security),
            MetricsInterceptor(),
            UnavailableInterceptor(),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            # gRPC sets SO_REUSEPORT by default: a second hub started on a port in use bound
            # it too, and the kernel split the connections between the two (each its own log
            # and figures). An address in use is refused instead.
            ("grpc.so_reuseport", 0),
        ],
    )
    names = [health.SERVICE_NAME]
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if ingest is not None:
        # Read tolerantly: an unreadable event is rejected by itself, not the whole request.
        add_ingest_service(ingest, server)
        names.append(ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name)
    if query is not None:
        # Read tolerantly too: bytes that are no request are refused naming the field.
        add_query_service(query, server)
        names.append(query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name)
    enable_reflection(names, server, max_streams, max_streams_per_caller, security)
    credentials = security.server_credentials()
    try:
        if credentials is not None:
            port = server.add_secure_port(listen, credentials)
        else:
            port = server.add_insecure_port(listen)
    except RuntimeError:  # gRPC's "Failed to bind to address"
        port = 0
    if port == 0:
        raise OSError(f"--listen: cannot bind {listen} (in use, or not an address of this host)")
    if security.local_socket and not server.add_insecure_port(security.local_socket):
        raise OSError(f"cannot bind the private socket {security.local_socket}")
    for name in ["", *names[2:]]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def _without_jit(dbapi_conn: Any, _record: Any) -> None:
    # PostgreSQL overestimates the rollup range scans of large read models and JIT-compiles
    # them: ~10 ms spent on answers that take a few. (SET is transactional: commit it.)
    cur = dbapi_conn.cursor()
    cur.execute("SET jit = off")
    cur.close()
    dbapi_conn.commit()


def units_registered(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.units)).scalar_one())


class ReferenceMismatch(ValueError):
    """The log holds another reference than the one asked: the hub does not start."""


def load_reference(ingestor: Ingestor, engine: Engine, reference: Reference | None = None) -> None:
    """Publish the reference hierarchy (the shipped one unless given) into a hub without
    units; or, where the log holds the first of its units (a crash cut the first append
    short, or units were added at the end of the file since), the rest of it. The read
    model has caught up with the log first.

    Raises ReferenceMismatch when the log holds another reference: never two hierarchies
    mixed, nor a reference seq renumbered."""
    reference = reference or shipped()
    events = list(reference.events)
    # What the client-side digest of each is: the read model keeps the same per event.
    digests = list(reference.digests) or [content_digest(e) for e in events]
    # The events a fingerprint vouches for are not read again: a restart with the same file
    # of a country's 640,800 units read and decoded every one (~3 s per 200k units).
    mark = read_mark(engine)
    known = 0
    if mark is not None and mark.units <= len(events):
        if fingerprint(digests[: mark.units]) == mark.fingerprint:
            known = mark.units
    held = reference_held(engine, after=known)
    if not known and not held and units_registered(engine):
        # A hierarchy of its own. A log that holds records but no unit (a county's Kafka-direct
        # events written before the hub first started, all refused) still gets the reference:
        # before, it never did, and every event after was refused 'unknown unit'.
        return
    differs = _first_difference(held, events, digests, known)
    if differs is not None:
        raise ReferenceMismatch(
            f"{reference.origin}: the log holds another reference hierarchy: {differs}; start "
            "with the reference it was loaded from (units may be added at the end of a file), "
            "or on a new log and read model"
        )
    count = known + len(held)
    if count > known or (count and mark is not None and mark.rules != reference.rules):
        # The units of this file were checked by its rules before (reference_from_file).
        write_mark(engine, Mark(count, fingerprint(digests[:count]), reference.rules))
    if count == len(events):
        return
    rest = events[count:]
    fresh = [event_from_pb(e, recorded_at=0) for e in rest]
    if count:
        # Units added since, checked all before any is appended: a county may have registered
        # one of them itself meanwhile.
        knowledge = ReadModelKnowledge(engine)
        knowledge.prefetch(fresh)
        refused = check_units(fresh, knowledge, first=count)
        if refused is not None:
            raise ReferenceMismatch(f"{reference.origin}: {refused}")
    # In batches ingest takes (a city may have more villages than one holds); one cut short
    # by a crash is completed at the next start, as above.
    for at in range(0, len(rest), MAX_BATCH):
        results = _publish_when_ready(ingestor, rest[at : at + MAX_BATCH])
        rejected = [r for r in results if r.reason]
        if rejected:
            raise ReferenceMismatch(f"{reference.origin}: refused: {rejected[0].reason}")
    # Fingerprinted now, so the next start need not check nor read the file's units again.
    # It vouches only once its last event is in the read model (read_mark): a hub stopped
    # before the read model caught up is checked whole next time.
    write_mark(engine, Mark(len(events), fingerprint(digests), reference.rules))


# While ingest refuses a reference batch, it is tried again this often; said this often.
READY_RETRY_S = 0.2
READY_SAY_S = 10.0


def _publish_when_ready(ingestor: Ingestor, events: list[pb.Event]) -> list[ingest_pb2.EventResult]:
    """Publish a reference batch, waiting while ingest is not ready for it: it refuses to run
    MAX_PENDING (200,000) events ahead of the read model, and a country's 640,800 units
    stopped the start after the first 200,000. (Refused, nothing of the batch is appended.)"""
    said = 0.0
    while True:
        try:
            return ingestor.publish(events, allow_reference=True)
        except NotReady as e:
            if ingestor.failure:  # refused for good (the log lost records), not behind
                raise
            if time.monotonic() - said >= READY_SAY_S:
                log.info("loading the reference waits: %s", e)
                said = time.monotonic()
            time.sleep(READY_RETRY_S)


def _first_difference(
    held: list[tuple[str, bytes]], asked: list[pb.Event], digests: list[bytes], first: int
) -> str | None:
    """Return how the reference events the log holds from index `first` on differ from
    those asked, or None when they are the same, one for one."""
    if first + len(held) > len(asked):
        return (
            f"{first + len(held)} reference units, where this one has {len(asked)} (units are "
            "added at the end of the file, never taken out)"
        )
    for i, (event_id, digest) in enumerate(held, start=first):
        if event_id != asked[i].event_id:
            return (
                f"its reference event {i + 1} is '{event_id}', where this one's is "
                f"'{asked[i].event_id}'"
            )
        if digest != digests[i]:
            return (
                f"its reference event {i + 1} '{event_id}' registered the unit otherwise than "
                f"units[{i}] here (units loaded are never changed)"
            )
    return None


def address(listen: str, port: int) -> str:
    return f"{listen.rsplit(':', 1)[0]}:{port}"


def watch_health(
    servicer: health.HealthServicer,
    services: dict[str, list[Check]],
    ingestor: Ingestor | None = None,
) -> HealthMonitor:
    """Probe the log and read model every few seconds and set each service's health; while
    the log or the read model is unreachable, ingest answers UNAVAILABLE at once (the node's
    outbox retries) instead of tying up a server thread on an append that cannot complete."""

    down: set[str] = set()

    def on_change(name: str, ok: bool) -> None:
        if name in ("log", "read model"):
            (down.discard if ok else down.add)(name)
            if ingestor is not None:
                ingestor.unreachable = " and ".join(sorted(down - monitor.full))
                ingestor.full = " and ".join(f"the {n}'s" for n in sorted(down & monitor.full))

    monitor = HealthMonitor(servicer, services, on_change=on_change)
    return monitor.start()


class Hub:
    """Ingest, aggregate and query in one process, on any log and read model."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.security = load_security(config)
        if config.private_socket and self.security.secured and is_unix(config.listen):
            # gRPC names every unix socket's caller "unix:": callers of this one would pass
            # for the simulator's on its private socket, and need no credentials.
            raise ValueError(
                f"--listen {config.listen}: with credentials and the simulator, listen on "
                "HOST:PORT (the simulator's private socket is the only unix socket whose "
                "callers are trusted), or give --no-simulate"
            )
        self._socket_dir = ""
        if not config.log_url or not config.db_url:
            make_data_dir(config.data_dir)
        self.log = open_log(config.log_spec)
        self.engine = open_engine(config.database)
        check_belongs(self.log, self.engine)
        fill_from_log(self.log, self.engine)
        self.feed = ChangeFeed()
        self.tailer = LogTailer(self.log, self.engine, self.feed)
        self.ingestor = Ingestor(self.log, self.engine)
        self.server: grpc.Server | None = None
        self.port = 0
        self.dashboard: DashboardServer | None = None
        self.monitor: HealthMonitor | None = None

    def start(self) -> None:
        if isinstance(self.log, EmbeddedLog):
            try:
                self.log.claim_writer()
            except RuntimeError as e:
                option = "--log" if self.config.log_url else "--data-dir"
                raise OSError(f"{option}: another hub uses it ({e})") from e
        # The read model catches up before ingest opens, so ingest checks against all of it.
        applied = self.tailer.catch_up()
        log.info("read model caught up (%d records applied)", applied)
        self.tailer.start()
        load_reference(self.ingestor, self.engine, self.config.reference)
        if self.config.private_socket and self.security.secured:
            # mkdtemp makes the directory 0700: only this OS user reaches the socket.
            self._socket_dir = tempfile.mkdtemp(prefix="duhub-sock-")
            self.security.local_socket = f"unix:{self._socket_dir}/hub.sock"
        # One cache for the gRPC and the dashboard's answers (the same questions, the same
        # keys): each kept its own, up to twice the memory, and answered each question twice.
        self.answers = AnswerCache(self.engine, self.config.answer_cache)
        self.server, self.port, health_ = create_server(
            self.config.listen,
            ingest=IngestServicer(
                self.ingestor,
                self.security,
                self.config.max_streams,
                self.config.max_streams_per_caller,
            ),
            query=QueryServicer(
                self.engine,
                self.feed,
                security=self.security,
                answer_cache=self.answers,
                max_streams=self.config.max_streams,
                max_streams_per_caller=self.config.max_streams_per_caller,
            ),
            security=self.security,
            max_streams=self.config.max_streams,
            max_streams_per_caller=self.config.max_streams_per_caller,
        )
        logs, db = log_check(self.log), database_check(self.engine)
        # The hub as a whole ("") is not serving while its aggregator cannot write (a full
        # disk); ingest (into the log) and query (from what is written) still are.
        whole = [logs, db, writes_check(self.engine)]
        services = {"": whole, INGEST_SERVICE: [logs, db], QUERY_SERVICE: [db]}
        self.monitor = watch_health(health_, services, self.ingestor)
        self.server.start()
        if self.config.http:
            self.dashboard = dashboard_of(
                self.config, self.engine, self.feed, self.security, self.answers
            )

    @property
    def address(self) -> str:
        return address(self.config.listen, self.port)

    @property
    def local_target(self) -> str:
        """Where in-process clients (the simulator) connect: the private socket, if any."""
        return self.security.local_socket or self.address

    def stop(self, grace: float = 2.0) -> None:
        # The tailer's bound (STOP_WITHIN_S) runs beside the server's grace, not after it: a
        # publish in flight then waits no longer for it (what it appends is applied at the
        # next start, as anything the tailer has not applied).
        self.tailer.request_stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.server is not None:
            self.server.stop(grace).wait()
        self.feed.close()
        if self.monitor is not None:
            self.monitor.stop()
        self.tailer.stop()
        self.log.close()
        self.engine.dispose()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


class IngestProcess:
    """`duhub serve ingest`: the gate alone, beside aggregate workers it does not drive."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.security = load_security(config)
        if not config.log_url or not config.db_url:
            make_data_dir(config.data_dir)
        self.log = open_log(config.log_spec)
        self.engine = open_engine(config.database)
        check_belongs(self.log, self.engine)
        self.ingestor = Ingestor(self.log, self.engine)
        self.ingestor.on_failure = self._fail
        self.server, self.port, self.health = create_server(
            config.listen,
            ingest=IngestServicer(
                self.ingestor, self.security, config.max_streams, config.max_streams_per_caller
            ),
            security=self.security,
            max_streams=config.max_streams,
            max_streams_per_caller=config.max_streams_per_caller,
        )
        self.monitor: HealthMonitor | None = None
        # Why it cannot serve (the log holds another reference, or lost records): the command
        # exits with it.
        self.failure = ""
        self.failed = threading.Event()
        # Set by `stop`: a catch-up still waiting then ends, where it retried on the closed
        # log every second, a traceback each, for as long as the process lived.
        self.stopping = threading.Event()

    def _fail(self, why: str) -> None:
        self.failure = why
        self.failed.set()

    def start(self) -> None:
        self.ingestor.ready.clear()
        self.ingestor.open_to_clients.clear()  # until the reference is in
        # Until it knows all the log holds, ingest refuses to publish: say so to probes too.
        for name in ("", INGEST_SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

        caught_up = threading.Event()
        checks = [flag_check("ready", caught_up), log_check(self.log)]
        checks.append(database_check(self.engine))
        services = {"": checks, INGEST_SERVICE: checks}
        monitor = self.monitor = watch_health(self.health, services, self.ingestor)

        def catch_up_then_load() -> None:
            while True:
                try:
                    self.ingestor.wait_until_caught_up()
                    load_reference(self.ingestor, self.engine, self.config.reference)
                    self.ingestor.open_to_clients.set()
                    break
                except ReferenceMismatch as e:
                    self._fail(str(e))
                    return
                except (*UNREACHABLE_DB, KafkaError, OSError) as e:
                    if self.stopping.is_set():
                        return
                    # The read model or the log went away meanwhile: wait for it and start
                    # over. (Before, this thread ended here and ingest never opened.)
                    log.warning("ingest: catching up with the log failed (%s); retrying", e)
                    time.sleep(1.0)
                except Exception:
                    if self.stopping.is_set():
                        return
                    # Anything else a library raises while a server restarts: this thread
                    # ending would leave ingest closed for good, with only a traceback on
                    # stderr to say why. Say it, and start over.
                    log.exception("ingest: catching up with the log failed; retrying")
                    time.sleep(1.0)
            caught_up.set()
            monitor.probe_once()  # SERVING now, if the log and read model answer

        threading.Thread(target=catch_up_then_load, name="catch-up", daemon=True).start()
        self.server.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.monitor is not None:
            self.monitor.stop()
        self.server.stop(2.0).wait()
        self.log.close()


class QueryProcess:
    """`duhub serve query`: answers from the read model; learns of changes from it."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.security = load_security(config)
        if not config.db_url:
            make_data_dir(config.data_dir)
        # Reads only: a few connections keep both cores busy (SQLite releases the GIL while
        # it works); more only add page caches (RSS) and contention. Server threads beyond
        # them wait for one (watch streams hold threads, not connections).
        self.engine = open_engine(
            config.database, sqlite_pool_size=QUERY_CONNECTIONS, sqlite_cache_mib=QUERY_CACHE_MIB
        )
        if self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "connect", _without_jit)
            self.engine.dispose()  # the connection that created the schema had no listener
        self.feed = ChangeFeed()
        self.answers = AnswerCache(self.engine, config.answer_cache)  # the dashboard's too
        self.server, self.port, self.health = create_server(
            config.listen,
            query=QueryServicer(
                self.engine,
                self.feed,
                security=self.security,
                answer_cache=self.answers,
                max_streams=config.max_streams,
                max_streams_per_caller=config.max_streams_per_caller,
            ),
            security=self.security,
            max_streams=config.max_streams,
            max_streams_per_caller=config.max_streams_per_caller,
        )
        self.dashboard: DashboardServer | None = None
        self.monitor: HealthMonitor | None = None

    def start(self) -> None:
        db = [database_check(self.engine)]
        self.monitor = watch_health(self.health, {"": db, QUERY_SERVICE: db})
        follow_changes(self.engine, self.feed)
        self.server.start()
        if self.config.http:
            self.dashboard = dashboard_of(
                self.config, self.engine, self.feed, self.security, self.answers
            )

    def stop(self, grace: float = 2.0) -> None:
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.monitor is not None:
            self.monitor.stop()
        self.feed.close()
        self.server.stop(grace).wait()
