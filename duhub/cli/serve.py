"""`duhub serve ingest|aggregate|query`: one service per process, for running them apart."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from pathlib import Path

from duhub import build, metrics
from duhub.bootstrap import (
    ANSWER_CACHE,
    HubConfig,
    IngestProcess,
    QueryProcess,
    address,
    make_data_dir,
)
from duhub.cli.bannerline import banner_line
from duhub.cli.bindcheck import unbindable
from duhub.cli.client import EXIT_USAGE
from duhub.cli.startup import FAILURES, check_db, failure, redacted
from duhub.cli.stopsignal import StopSignals, log_stopped
from duhub.log.belongs import lost_reason
from duhub.log.spec import is_kafka
from duhub.logs import fatal, library_level, set_library_level, setup_logging
from duhub.reference import Reference
from duhub.reference.file import reference_from_file

log = logging.getLogger(__name__)


def config(args: argparse.Namespace, reference: Reference | None = None) -> HubConfig:
    return HubConfig(
        data_dir=Path(args.data_dir).resolve(),
        listen=args.listen,
        db_url=args.db or "",
        log_url=args.log or "",
        http=http_address(args) if getattr(args, "service", "") == "query" else "",
        tls_dir=getattr(args, "tls_dir", "") or "",
        tokens=getattr(args, "tokens", "") or "",
        answer_cache=getattr(args, "answer_cache", ANSWER_CACHE),
        max_streams=args.max_streams,
        max_streams_per_caller=args.max_streams_per_caller,
        reference=reference,
    )


def http_address(args: argparse.Namespace) -> str:
    """Return the dashboard's --http address, or "" when it is off."""
    value = (getattr(args, "http", "") or "").strip()
    return "" if value.lower() in ("", "off", "none") else value


def run(args: argparse.Namespace) -> int:
    # A server outlives its clients: one that hangs up mid-reply (a closed dashboard tab)
    # must cost a BrokenPipeError in its thread, not the process (main() sets SIG_DFL).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    setup_logging(getattr(args, "log_format", "text"))
    try:
        set_library_level(library_level())
    except ValueError as e:
        return fatal(f"duhub serve {args.service}: {e}", EXIT_USAGE)
    try:
        # Read and checked whole before anything is opened (the read model only read: a
        # fingerprint of the same units spares checking each).
        reference = _reference(args, config(args).database)
    except ValueError as e:
        return fatal(f"duhub serve {args.service}: {e}", EXIT_USAGE)
    cfg = config(args, reference)
    try:
        check_db(cfg.database)
    except ValueError as e:
        return _refused(args.service, e, cfg)
    listen = "" if args.service == "aggregate" else cfg.listen  # the aggregator serves none
    if why := unbindable(listen, cfg.http, getattr(args, "metrics", "") or ""):
        # Before the data dir, the log or the read model is made, the reference loaded.
        return fatal(f"duhub serve {args.service}: {why}", EXIT_USAGE)
    if args.service == "aggregate":
        return _aggregate(cfg, getattr(args, "metrics", ""))
    try:
        service = IngestProcess(cfg) if args.service == "ingest" else QueryProcess(cfg)
    except FAILURES as e:  # no credentials, a bad --log or --db, --listen in use (it binds)
        return _refused(args.service, e, cfg)
    try:
        service.start()
        started = time.monotonic()
        url = metrics.serve_metrics(getattr(args, "metrics", ""), roles=(args.service,))
    except OSError as e:  # an address in use: name the option, no traceback
        service.stop()
        return fatal(f"duhub serve {args.service}: {e}", EXIT_USAGE)
    if url and isinstance(service, IngestProcess):
        # The lag matters most while every aggregate worker is down, and then none serves it.
        from duhub.readmodel.writer import read_positions

        engine = service.engine
        metrics.watch_lag(service.log, lambda: read_positions(engine))
    # Caught from before the banner: whoever read it and sends a kill gets a clean stop.
    with StopSignals() as stop:
        # What this process opened: a query service answers from the read model alone.
        uses = "" if args.service == "query" else f"log {cfg.log_spec}, "
        print(
            f"duhub {args.service} listening on {address(cfg.listen, service.port)} "
            f"({uses}read model {redacted(cfg.database)})",
            flush=True,
        )
        print(banner_line("security", service.security.describe()), flush=True)
        print(banner_line("build", build.describe()), flush=True)
        dashboard = getattr(service, "dashboard", None)
        if dashboard is not None:
            print(banner_line("dashboard", dashboard.url), flush=True)
        if url:
            print(banner_line("metrics", url), flush=True)
        failed = getattr(service, "failed", None)
        while not stop.wait(0.5):
            # The log holds another reference, or lost records (ingest refuses for good).
            if failed is not None and failed.is_set():
                service.stop()
                return fatal(f"duhub serve {args.service}: {service.failure}", EXIT_USAGE)
        service.stop()
        came = stop.noted()
    log_stopped(log, f"{args.service} service", came, started)
    return 0


def _reference(args: argparse.Namespace, database: str) -> Reference | None:
    """Return the hierarchy of --reference FILE (None: the shipped one), or raise ValueError."""
    path = getattr(args, "reference", None)
    if not path:
        return None
    if args.service != "ingest":
        raise ValueError("--reference: only the ingest service loads the reference hierarchy")
    return reference_from_file(path, database)


def _aggregate(cfg: HubConfig, metrics_listen: str = "") -> int:
    try:
        # The embedded log and SQLite by default; on Kafka, the Faust worker's state (Faust
        # makes only its own directory in it: a traceback, were the data dir not there).
        make_data_dir(cfg.data_dir)
    except ValueError as e:
        return fatal(f"duhub serve aggregate: {e}", EXIT_USAGE)
    # Caught from before the banner, as the other services do: whoever read it and sends a
    # kill gets a clean stop (on Kafka, handed on to Faust's loop once it listens).
    with StopSignals() as stop:
        print(
            f"duhub aggregate: log {cfg.log_spec} -> read model {redacted(cfg.database)}",
            flush=True,
        )
        print(banner_line("build", build.describe()), flush=True)
        try:
            url = metrics.serve_metrics(metrics_listen, roles=("aggregate",))
        except OSError as e:
            return fatal(f"duhub serve aggregate: {e}", EXIT_USAGE)
        if url:
            print(banner_line("metrics", url), flush=True)
        if is_kafka(cfg.log_spec):
            return _faust_worker(cfg, bool(url), stop)
        return _log_tailer(cfg, bool(url), stop)


def _faust_worker(cfg: HubConfig, metrics_served: bool, stop: StopSignals) -> int:
    from services.aggregate.faust_app import build_app, run_worker

    try:
        app = build_app(cfg.log_spec, cfg.database, str(cfg.data_dir / "faust"))
    except FAILURES as e:  # a bad --log or --db, or one that does not answer
        return _refused("aggregate", e, cfg)
    run_worker(app, metrics_served=metrics_served, early_stop=stop)
    return 0


def _log_tailer(cfg: HubConfig, metrics_served: bool, stop: StopSignals) -> int:
    from duhub.bootstrap import open_log
    from duhub.health import watch_dependencies
    from duhub.readmodel.engine import open_engine
    from duhub.readmodel.log_fills import fill_from_log
    from duhub.readmodel.writer import read_positions
    from services.aggregate.embedded import LogTailer

    try:
        log_, engine = open_log(cfg.log_spec), open_engine(cfg.database, worker=True)
        fill_from_log(log_, engine)
    except FAILURES as e:
        return _refused("aggregate", e, cfg)
    if metrics_served:
        metrics.watch_lag(log_, lambda: read_positions(engine))
        watch_dependencies(log_, engine)
    tailer = LogTailer(log_, engine)
    tailer.start()
    started = time.monotonic()
    # A tailer that stopped loudly (its read model refused a batch, the log lost records)
    # ends the process, so a supervisor starts it again, as `duhub up` ends.
    tailer.run_until(stop.wait)
    tailer.stop()
    log_.close()
    engine.dispose()
    # As the other services and the Kafka worker say it.
    came = stop.noted() or ("its aggregator failed" if tailer.error else None)
    log_stopped(log, "aggregate service", came, started)
    if lost := lost_reason(tailer.error):
        return fatal(f"duhub serve aggregate: {lost}", EXIT_USAGE)
    return 1 if tailer.error else 0


def _refused(service: str, e: BaseException, cfg: HubConfig) -> int:
    """Say why the service cannot start, naming the option; return the exit code."""
    return fatal(f"duhub serve {service}: {failure(e, cfg.database, cfg.log_spec)}", EXIT_USAGE)
