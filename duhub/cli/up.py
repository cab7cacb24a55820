"""`duhub up`: the whole hub in one process on the embedded default."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import replace
from pathlib import Path

from duhub import build, metrics
from duhub.bootstrap import Hub, HubConfig, ReferenceMismatch
from duhub.cli.bannerline import banner_line
from duhub.cli.bindcheck import unbindable
from duhub.cli.client import EXIT_USAGE
from duhub.cli.main import DEFAULT_METRICS
from duhub.cli.serve import http_address
from duhub.cli.startup import FAILURES, check_db, failure, redacted
from duhub.cli.stopsignal import StopSignals, log_stopped
from duhub.log.base import LogCorrupted
from duhub.log.belongs import lost_reason
from duhub.logs import fatal, library_level, set_library_level, setup_logging
from duhub.readmodel.writer import read_positions
from duhub.reference import Reference
from duhub.reference.file import reference_from_file

log = logging.getLogger("duhub")

EXIT_DAMAGED = 4  # the log is damaged (as audit verify's exit 4)


def run(args: argparse.Namespace) -> int:
    # A server outlives its clients: one that hangs up mid-reply (a closed dashboard tab)
    # must cost a BrokenPipeError in its thread, not the process (main() sets SIG_DFL).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    setup_logging(getattr(args, "log_format", "text"))
    try:
        set_library_level(library_level())
    except ValueError as e:
        return fatal(f"duhub up: {e}", EXIT_USAGE)
    data_dir = Path(args.data_dir).resolve()
    try:
        config = HubConfig(
            data_dir=data_dir,
            listen=args.listen,
            db_url=args.db or "",
            log_url=args.log or "",
            http=http_address(args),
            tls_dir=args.tls_dir or "",
            tokens=args.tokens or "",
            private_socket=not args.no_simulate,
            max_streams=args.max_streams,
            max_streams_per_caller=args.max_streams_per_caller,
        )
    except ValueError as e:  # a caller's share past --max-streams
        return fatal(f"duhub up: {e}", EXIT_USAGE)
    try:
        # Read and checked whole before anything is opened: a bad file appends nothing. (The
        # read model is only read: a fingerprint of the same units spares checking each.)
        reference = own_reference(
            args.reference, simulated=not args.no_simulate, database=config.database
        )
    except ValueError as e:
        return fatal(f"duhub up: {e}", EXIT_USAGE)
    config = replace(config, reference=reference)
    if why := unbindable(config.listen, config.http, args.metrics, metrics_default=DEFAULT_METRICS):
        # Before the data dir or the log is made: a failed start leaves nothing behind.
        return fatal(f"duhub up: {why}", EXIT_USAGE)
    try:
        check_db(config.database)
        hub = Hub(config)
    except LogCorrupted as e:  # a damaged record before the end: not to be cut off
        return fatal(f"duhub up: {e}: 'duhub audit verify' names what is damaged", EXIT_DAMAGED)
    except FAILURES as e:  # no credentials for a non-loopback address, a bad --log or --db
        return fatal(f"duhub up: {failure(e, config.database, config.log_spec)}", EXIT_USAGE)
    try:
        hub.start()
    except (OSError, ReferenceMismatch) as e:  # an address in use, another reference held
        hub.stop(grace=0)
        return fatal(f"duhub up: {e}", EXIT_USAGE)
    try:
        # The default address may be taken (another hub on this machine): then only a warning.
        url = metrics.serve_metrics(args.metrics, required=args.metrics != DEFAULT_METRICS)
    except OSError as e:
        hub.stop(grace=0)
        return fatal(f"duhub up: {e}", EXIT_USAGE)
    if url:
        engine = hub.engine
        metrics.watch_lag(hub.log, lambda: read_positions(engine))
    simulator = None
    if not args.no_simulate:
        from duhub.simulate import Simulator

        # With credentials, over the hub's private socket (bootstrap.Hub.local_target).
        simulator = Simulator(hub.local_target, data_dir, rate=args.rate)
        simulator.start()
    started = time.monotonic()
    # Caught from before the banner: whoever read it and sends a kill gets a clean stop.
    with StopSignals() as stop:
        print(banner(hub, simulated=simulator is not None, metrics_url=url), flush=True)
        # Ingest failing (the log lost records: it refuses for good) ends the hub too.
        hub.tailer.run_until(stop.wait, failed=lambda: bool(hub.ingestor.failure))
        if simulator is not None:
            simulator.stop()
        hub.stop()
        came = stop.noted() or _failed(hub)
    log_stopped(log, "hub", came, started)
    lost = hub.ingestor.failure or lost_reason(hub.tailer.error)
    if lost:  # as at start (exit 2), which a restart then meets
        return fatal(f"duhub up: {lost}", EXIT_USAGE)
    return 1 if hub.tailer.error is not None else 0


def _failed(hub: Hub) -> str | None:
    """What ended the hub, when no signal did."""
    if hub.ingestor.failure:
        return "ingest failed"
    return "its aggregator failed" if hub.tailer.error is not None else None


def own_reference(path: str | None, *, simulated: bool, database: str = "") -> Reference | None:
    """Return the hierarchy of --reference FILE (None: the shipped one), or raise ValueError;
    `database`: the read model whose fingerprint may spare checking each unit again."""
    if not path:
        return None
    if simulated:
        # The simulated nodes publish for the shipped Yichang units.
        raise ValueError(
            "--reference: the simulator publishes for the shipped hierarchy; add --no-simulate"
        )
    return reference_from_file(path, database)


def banner(hub: Hub, simulated: bool, metrics_url: str = "") -> str:
    """Return what `duhub up` prints: where to look."""
    host = hub.address
    nodes = (
        "simulated (live demo); --no-simulate for real use"
        if simulated
        else "none simulated: publish with duhub publish FILE"
    )
    return "\n".join(
        [
            "",
            "duhub is up.",
            banner_line("gRPC (ingest + query)", f"{host}   (health and reflection served)"),
            banner_line("security", hub.security.describe()),
            *([banner_line("dashboard", hub.dashboard.url)] if hub.dashboard else []),
            *([banner_line("metrics", metrics_url)] if metrics_url else []),
            banner_line("log", hub.config.log_spec),
            banner_line("read model", redacted(hub.config.database)),
            banner_line("county nodes", nodes),
            banner_line("build", build.describe()),
            "Look at it with:",
            f"  export DUHUB_TARGET={host}",
            *_credential_hint(hub),
            "  duhub campaigns",
            "  duhub query coverage --campaign <id from 'duhub campaigns'>",
            "  duhub query stats --metric visits,problems_found,problems_rectified --group-by unit",
            "  duhub query stats --metric sanctioned_persons,accountability_persons"
            " --from 2022-01-01 --to 2023-01-01 --group-by quarter",
            "Stop with Ctrl-C.",
            "",
        ]
    )


def _credential_hint(hub: Hub) -> list[str]:
    if hub.security.mutual_tls:
        return [f"  export DUHUB_TLS_DIR={hub.config.tls_dir} DUHUB_CERT=<node-… or user-…>"]
    if hub.security.tokens is not None:
        tls = [f"  export DUHUB_TLS_DIR={hub.config.tls_dir}"] if hub.security.tls else []
        return [*tls, "  export DUHUB_TOKEN=<a token from 'duhub certs token'>"]
    return []
